//! `{{ image.version }}`-style placeholders in suite strings.
//!
//! `image.FIELD` is the image of the machine a step acts on; `images.CHANNEL.FIELD` names a release.

/// Fields an image exposes to templates.
pub const FIELDS: &[&str] = &[
    "version",
    "channel",
    "kernel_release",
    "kernel_version",
    "digest",
];

/// Resolves one placeholder path (`image.version`, `images.beta.kernel_release`).
pub trait Lookup {
    fn lookup(&self, path: &[&str]) -> Option<String>;
}

/// Lists the placeholders in `text`, or says why the text is malformed.
pub fn placeholders(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Checks a placeholder path's shape against the known channels.
pub fn check_path(path: &str, channels: &[String]) -> Result<(), String> {
    let parts: Vec<&str> = path.split('.').collect();
    let field_ok = |f: &str| FIELDS.contains(&f);
    match parts.as_slice() {
        ["image", f] if field_ok(f) => Ok(()),
        ["images", c, f] if field_ok(f) => {
            if channels.iter().any(|k| k == c) {
                Ok(())
            } else {
                Err(format!(
                    "`{{{{ {path} }}}}` names unknown channel `{c}`; known: {}",
                    channels.join(", ")
                ))
            }
        }
        _ => Err(format!(
            "unknown placeholder `{{{{ {path} }}}}`; expected image.FIELD or images.CHANNEL.FIELD with FIELD one of {}",
            FIELDS.join(", ")
        )),
    }
}

/// Replaces every placeholder; unknown ones are an error naming them.
pub fn expand(text: &str, ctx: &dyn Lookup) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
        let path = after[..end].trim();
        let parts: Vec<&str> = path.split('.').collect();
        let value = ctx
            .lookup(&parts)
            .ok_or_else(|| format!("no value for `{{{{ {path} }}}}`"))?;
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Ctx;
    impl Lookup for Ctx {
        fn lookup(&self, path: &[&str]) -> Option<String> {
            match path {
                ["image", "version"] => Some("1000.0.0".into()),
                ["images", "beta", "version"] => Some("1001.0.0".into()),
                _ => None,
            }
        }
    }

    #[test]
    fn expands_known_placeholders() {
        assert_eq!(
            expand("v={{ image.version }}, b={{images.beta.version}}", &Ctx).unwrap(),
            "v=1000.0.0, b=1001.0.0"
        );
        assert_eq!(expand("plain", &Ctx).unwrap(), "plain");
    }

    #[test]
    fn reports_unknown_and_unclosed() {
        assert!(expand("{{ image.nope }}", &Ctx)
            .unwrap_err()
            .contains("image.nope"));
        assert!(expand("{{ image.version", &Ctx)
            .unwrap_err()
            .contains("unclosed"));
    }

    #[test]
    fn checks_paths_against_channels() {
        let ch = vec!["stable".to_string(), "beta".to_string()];
        assert!(check_path("image.version", &ch).is_ok());
        assert!(check_path("images.beta.kernel_release", &ch).is_ok());
        assert!(check_path("images.gamma.version", &ch)
            .unwrap_err()
            .contains("unknown channel `gamma`"));
        assert!(check_path("image.colour", &ch)
            .unwrap_err()
            .contains("unknown placeholder"));
        assert_eq!(
            placeholders("a {{ x }} b {{y}}").unwrap(),
            vec!["x".to_string(), "y".to_string()]
        );
    }
}
