//! Ignition configs (spec 3.3.0, the newest Debian's Ignition 2.14 takes), written per machine
//! and checked with `ignition-validate` before any VM boots.

use crate::suite::IgnitionSpec;
use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;

pub const SPEC_VERSION: &str = "3.3.0";

fn data_url(contents: &str) -> String {
    format!(
        "data:;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(contents)
    )
}

/// The config for one machine: user `core` with the run's key, the hostname (the machine's
/// name unless the test sets one), and the test's files and units.
pub fn config(spec: &IgnitionSpec, machine: &str, ssh_pubkey: &str) -> Value {
    let hostname = spec.hostname.as_deref().unwrap_or(machine);
    let mut files = vec![json!({
        "path": "/etc/hostname",
        "mode": 0o644,
        "overwrite": true,
        "contents": { "source": data_url(&format!("{hostname}\n")) },
    })];
    for f in &spec.files {
        let mut file = json!({
            "path": f.path,
            "mode": f.mode,
            "overwrite": true,
            "contents": { "source": data_url(&f.contents) },
        });
        if let Some(u) = &f.user {
            file["user"] = json!({ "name": u });
        }
        if let Some(g) = &f.group {
            file["group"] = json!({ "name": g });
        }
        files.push(file);
    }
    let units: Vec<Value> = spec
        .units
        .iter()
        .map(|u| {
            let mut v = json!({ "name": u.name });
            if let Some(c) = &u.contents {
                v["contents"] = json!(c);
            }
            if let Some(e) = u.enabled {
                v["enabled"] = json!(e);
            }
            if let Some(m) = u.mask {
                v["mask"] = json!(m);
            }
            v
        })
        .collect();
    json!({
        "ignition": { "version": SPEC_VERSION },
        "passwd": { "users": [ {
            "name": "core",
            "sshAuthorizedKeys": [ ssh_pubkey.trim() ],
        } ] },
        "storage": { "files": files },
        "systemd": { "units": units },
    })
}

/// Runs `ignition-validate`; errors (exit 1) fail, warnings are returned.
pub fn validate(path: &Path) -> Result<Vec<String>> {
    let out = std::process::Command::new("ignition-validate")
        .arg(path)
        .output()
        .context("running ignition-validate (install Debian's `ignition` package)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "{}: ignition-validate rejected the config:\n{}",
            path.display(),
            text.trim()
        );
    }
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{FileSpec, UnitSpec};

    fn spec() -> IgnitionSpec {
        IgnitionSpec {
            hostname: Some("web-1".into()),
            files: vec![FileSpec {
                path: "/etc/motd".into(),
                contents: "hello\n".into(),
                mode: 0o640,
                user: Some("core".into()),
                group: None,
            }],
            units: vec![UnitSpec {
                name: "hello.service".into(),
                contents: Some("[Service]\nExecStart=/bin/true\n".into()),
                enabled: Some(true),
                mask: None,
            }],
        }
    }

    #[test]
    fn carries_user_key_hostname_files_units() {
        let c = config(&spec(), "node", "ssh-ed25519 AAAA test\n");
        assert_eq!(c["ignition"]["version"], "3.3.0");
        assert_eq!(c["passwd"]["users"][0]["name"], "core");
        assert_eq!(
            c["passwd"]["users"][0]["sshAuthorizedKeys"][0],
            "ssh-ed25519 AAAA test"
        );
        let files = c["storage"]["files"].as_array().unwrap();
        assert_eq!(files[0]["path"], "/etc/hostname");
        assert_eq!(files[0]["contents"]["source"], data_url("web-1\n"));
        assert_eq!(files[1]["mode"], 416, "0640 is 416 in decimal JSON");
        assert_eq!(files[1]["user"]["name"], "core");
        assert_eq!(c["systemd"]["units"][0]["enabled"], true);
    }

    #[test]
    fn hostname_defaults_to_machine_name() {
        let c = config(&IgnitionSpec::default(), "node-2", "k");
        assert_eq!(
            c["storage"]["files"][0]["contents"]["source"],
            data_url("node-2\n")
        );
    }

    #[test]
    fn ignition_validate_accepts_ours_and_rejects_broken() {
        if std::process::Command::new("ignition-validate")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("ignition-validate is required for this test (Debian package `ignition`)");
        }
        let d = tempfile::tempdir().unwrap();
        let good = d.path().join("good.ign");
        std::fs::write(
            &good,
            config(&spec(), "n", "ssh-ed25519 AAAA k").to_string(),
        )
        .unwrap();
        validate(&good).unwrap();
        let bad = d.path().join("bad.ign");
        std::fs::write(
            &bad,
            r#"{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"relative"}]}}"#,
        )
        .unwrap();
        let e = validate(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.ign"), "{e}");
    }
}
