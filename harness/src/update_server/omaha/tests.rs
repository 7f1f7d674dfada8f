use super::*;

/// An update check as update_engine sends it (the shape of the Omaha v3 documentation's
/// example, with Flatcar's app id and attributes).
const CHECK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
  <os version="Chateau" platform="CoreOS" sp="3510.2.0_x86_64"></os>
  <app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="3510.2.0" track="beta" bootid="{7e2b0c4e-2b8d-4e43-9c6d-1d2c3e4f5a6b}" oem="qemu" oemversion="" alephversion="3510.2.0" machineid="e0b5bd5c9a6a4b2f8a7a0d7e1c2b3a49" machinealias="" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">
    <ping active="1"></ping>
    <updatecheck></updatecheck>
    <event eventtype="3" eventresult="2" previousversion=""></event>
  </app>
</request>"#;

fn offer() -> Offer {
    Offer {
        version: "3510.3.0".into(),
        codebase: "http://10.0.2.100/flatcar/3510.3.0/".into(),
        name: "flatcar_production_update.gz".into(),
        size: 123456,
        sha1_b64: Some("2jmj7l5rSw0yVb/vlWAYkK/YBwk=".into()),
        sha256_b64: "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".into(),
        sha256_hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    }
}

#[test]
fn an_update_check_is_read() {
    let r = parse_request(CHECK).unwrap();
    assert_eq!(r.appid, "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}");
    assert_eq!((r.version.as_str(), r.track.as_str()), ("3510.2.0", "beta"));
    assert_eq!(r.board, "amd64-usr");
    assert!(r.updatecheck && r.ping);
    assert_eq!(r.events, vec![(3, 2)]);
}

#[test]
fn an_update_is_offered_with_url_size_and_digests() {
    let r = parse_request(CHECK).unwrap();
    let x = response(&r, Some(&offer()));
    // Read back as a client would.
    let mut rd = Reader::from_str(&x);
    let mut got = std::collections::BTreeMap::new();
    loop {
        match rd.read_event().unwrap() {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let n = String::from_utf8_lossy(e.name().as_ref()).to_string();
                for a in e.attributes().flatten() {
                    let k = String::from_utf8_lossy(a.key.as_ref()).to_string();
                    got.insert(
                        format!("{n}.{k}"),
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .unwrap()
                            .to_string(),
                    );
                }
            }
            _ => {}
        }
    }
    assert_eq!(got["response.protocol"], "3.0");
    assert_eq!(got["app.status"], "ok");
    assert_eq!(got["updatecheck.status"], "ok");
    assert_eq!(got["url.codebase"], "http://10.0.2.100/flatcar/3510.3.0/");
    assert_eq!(got["manifest.version"], "3510.3.0");
    assert_eq!(got["package.name"], "flatcar_production_update.gz");
    assert_eq!(got["package.size"], "123456");
    assert_eq!(got["package.hash_sha256"], offer().sha256_hex);
    assert_eq!(got["package.hash"], "2jmj7l5rSw0yVb/vlWAYkK/YBwk=");
    assert_eq!(got["action.event"], "postinstall");
    assert_eq!(got["action.sha256"], offer().sha256_b64);
    assert!(
        x.contains("<ping status=\"ok\"></ping><event status=\"ok\"></event>"),
        "{x}"
    );
}

#[test]
fn the_running_version_gets_noupdate() {
    let mut o = offer();
    o.version = "3510.2.0".into();
    let x = response(&parse_request(CHECK).unwrap(), Some(&o));
    assert!(
        x.contains("<updatecheck status=\"noupdate\"></updatecheck>"),
        "{x}"
    );
    let x = response(&parse_request(CHECK).unwrap(), None);
    assert!(x.contains("noupdate"), "{x}");
}

#[test]
fn an_event_report_alone_is_acknowledged_without_an_update_check() {
    let only_event = CHECK
        .replace("<updatecheck></updatecheck>", "")
        .replace("<ping active=\"1\"></ping>", "");
    let x = response(&parse_request(&only_event).unwrap(), Some(&offer()));
    assert!(!x.contains("updatecheck"), "{x}");
    assert!(x.contains("<event status=\"ok\"></event>"), "{x}");
}

#[test]
fn other_documents_are_refused_saying_what_was_expected() {
    assert!(parse_request("<hello/>").unwrap_err().contains("<request>"));
    let v2 = CHECK.replace("protocol=\"3.0\"", "protocol=\"2.0\"");
    assert!(parse_request(&v2).unwrap_err().contains("3.0"));
    assert!(parse_request("<request protocol=\"3.0\"></request>")
        .unwrap_err()
        .contains("appid"));
}

#[test]
fn values_are_escaped() {
    let mut o = offer();
    o.name = "a\"<b>&.gz".into();
    let x = response(&parse_request(CHECK).unwrap(), Some(&o));
    assert!(x.contains("name=\"a&quot;&lt;b&gt;&amp;.gz\""), "{x}");
}

#[test]
fn a_hex_digest_becomes_the_actions_base64() {
    // The SHA-256 of nothing, both ways.
    assert_eq!(
        hex_to_base64("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .as_deref(),
        Some("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    );
    assert_eq!(hex_to_base64("zz"), None);
    assert_eq!(hex_to_base64("abc"), None);
}
