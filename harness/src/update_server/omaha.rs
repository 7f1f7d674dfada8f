//! Omaha v3, the update protocol of Flatcar's update_engine (and ChromeOS's), server side:
//! an update check in, an update manifest (or `noupdate`) out. Written from the protocol's
//! documentation and unit-tested against its documented request and response shapes; nothing
//! here runs update_engine, so it is **untested against a real client**.
//!
//! A request names the app (`appid`), its version and track (the channel), and asks for an
//! `updatecheck`, reports `event`s and `ping`s; the response answers each, and for an update
//! gives the payload's URL base, name, size and digests and the `postinstall` action.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// What an update_engine request asks, as far as the server needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub protocol: String,
    pub appid: String,
    /// The version running on the machine.
    pub version: String,
    /// The channel (`stable`, `beta`, …).
    pub track: String,
    pub machineid: String,
    pub board: String,
    pub updatecheck: bool,
    pub ping: bool,
    /// (eventtype, eventresult) of each event reported.
    pub events: Vec<(u32, u32)>,
}

/// The release the server offers to a request that asks for an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub version: String,
    /// Where the payload is, ending in `/`; the client fetches `codebase` + `name`.
    pub codebase: String,
    pub name: String,
    pub size: u64,
    /// The payload's SHA-1, base64 (`hash`, which older update_engines check); left out
    /// when not known.
    pub sha1_b64: Option<String>,
    /// Its SHA-256: base64 for the postinstall action, hex for `hash_sha256`.
    pub sha256_b64: String,
    pub sha256_hex: String,
}

/// Reads an Omaha v3 request; anything else is an error saying what was expected.
pub fn parse_request(xml: &str) -> Result<Request, String> {
    let mut r = Reader::from_str(xml);
    let mut req = Request::default();
    let mut seen_request = false;
    loop {
        match r.read_event() {
            Err(e) => return Err(format!("not XML at byte {}: {e}", r.buffer_position())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e) | Event::Empty(e)) => {
                let a = |k: &str| attr(&e, k);
                match e.name().as_ref() {
                    b"request" => {
                        seen_request = true;
                        req.protocol = a("protocol");
                    }
                    b"app" => {
                        req.appid = a("appid");
                        req.version = a("version");
                        req.track = a("track");
                        req.machineid = a("machineid");
                        req.board = a("board");
                    }
                    b"updatecheck" => req.updatecheck = true,
                    b"ping" => req.ping = true,
                    b"event" => req.events.push((
                        a("eventtype").parse().unwrap_or(0),
                        a("eventresult").parse().unwrap_or(0),
                    )),
                    _ => {}
                }
            }
            Ok(_) => {}
        }
    }
    if !seen_request {
        return Err("expected an Omaha <request> element".into());
    }
    if req.protocol != "3.0" {
        return Err(format!(
            "expected Omaha protocol=\"3.0\", found \"{}\"",
            req.protocol
        ));
    }
    if req.appid.is_empty() {
        return Err("expected an <app appid=…> element".into());
    }
    Ok(req)
}

fn attr(e: &BytesStart, key: &str) -> String {
    e.try_get_attribute(key)
        .ok()
        .flatten()
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
        .unwrap_or_default()
}

/// The response to `req`: the update `offer` when it asks for an update check and the offer
/// is another version than the one it runs, `noupdate` otherwise; events and pings acknowledged.
pub fn response(req: &Request, offer: Option<&Offer>) -> String {
    let mut app = String::new();
    if req.ping {
        app.push_str("<ping status=\"ok\"></ping>");
    }
    for _ in &req.events {
        app.push_str("<event status=\"ok\"></event>");
    }
    if req.updatecheck {
        match offer.filter(|o| o.version != req.version) {
            Some(o) => app.push_str(&update(o)),
            None => app.push_str("<updatecheck status=\"noupdate\"></updatecheck>"),
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response protocol=\"3.0\" server=\"aviary\"><daystart elapsed_seconds=\"0\"></daystart><app appid=\"{}\" status=\"ok\">{app}</app></response>\n",
        esc(&req.appid)
    )
}

fn update(o: &Offer) -> String {
    format!(
        "<updatecheck status=\"ok\"><urls><url codebase=\"{}\"></url></urls>\
         <manifest version=\"{}\"><packages><package name=\"{}\"{} size=\"{}\" required=\"true\" hash_sha256=\"{}\"></package></packages>\
         <actions><action event=\"postinstall\" sha256=\"{}\" DisablePayloadBackoff=\"true\"></action></actions></manifest></updatecheck>",
        esc(&o.codebase),
        esc(&o.version),
        esc(&o.name),
        o.sha1_b64
            .as_ref()
            .map(|h| format!(" hash=\"{}\"", esc(h)))
            .unwrap_or_default(),
        o.size,
        esc(&o.sha256_hex),
        esc(&o.sha256_b64),
    )
}

/// A hex digest as base64 (the postinstall action's `sha256`); None if not hex.
pub fn hex_to_base64(hex: &str) -> Option<String> {
    use base64::Engine;
    if hex.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    Some(base64::engine::general_purpose::STANDARD.encode(bytes?))
}

fn esc(s: &str) -> String {
    quick_xml::escape::escape(s).into_owned()
}

#[cfg(test)]
mod tests;
