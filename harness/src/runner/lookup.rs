//! Template values for `{{ image.* }}` and `{{ images.CHANNEL.* }}`.

use crate::images::manifest::Manifest;
use crate::images::ResolvedImage;
use crate::suite::template::Lookup;

pub struct Values<'a> {
    pub image: &'a ResolvedImage,
    pub manifest: &'a Manifest,
}

impl Lookup for Values<'_> {
    fn lookup(&self, path: &[&str]) -> Option<String> {
        match path {
            ["image", field] => self.image.field(field),
            ["images", channel, field] => {
                let r = self.manifest.channels.get(*channel)?;
                match *field {
                    "version" => Some(r.version.clone()),
                    "channel" => Some(channel.to_string()),
                    "kernel_release" => r.kernel_release.clone(),
                    "kernel_version" => r.kernel_version.clone(),
                    "digest" => r.disk.as_ref().map(|d| d.sha256.clone()),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}
