//! Offline slot inspection between boots: read a (qcow2) disk through `qemu-img dd` — no mount,
//! no root — parse its GPT with the gpt crate, and decode slot state from either encoding:
//! the GRUB environment block on BOOT (RAUC's ORDER / X_OK / X_TRY scheme) or the gptprio
//! attribute bits of ChromeOS, Flatcar and Bottlerocket (priority 48–51, tries 52–55,
//! successful 56).

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One GPT entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub number: u32,
    pub label: String,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
}

/// A slot's state as read offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotState {
    pub slot: String,
    /// The slot the bootloader will pick next.
    pub active: bool,
    /// Booted (or being booted) but not yet confirmed good.
    pub tried: bool,
    /// Confirmed good by a healthy boot.
    pub good: bool,
    /// Higher boots first (ORDER position for GRUB, bits 48–51 for gptprio).
    pub priority: u8,
}

/// Copies `count` 512-byte sectors from `skip` out of a disk image of any format qemu-img reads.
pub fn read_sectors(image: &Path, skip: u64, count: u64) -> Result<Vec<u8>> {
    Ok(std::fs::read(extract_sectors(image, skip, count)?.path())?)
}

/// Copies `count` 512-byte sectors from `skip` into a temporary file (removed when dropped):
/// a whole partition goes from disk to disk, never through Aviary's memory.
fn extract_sectors(image: &Path, skip: u64, count: u64) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::NamedTempFile::new()?;
    // The largest block size that divides both offsets: bs=512 is very slow for big reads.
    let bs = [2048u64, 128, 8, 1]
        .into_iter()
        .find(|b| skip % b == 0 && count % b == 0)
        .unwrap_or(1);
    let out = Command::new("qemu-img")
        .args(["dd", "-U", "-O", "raw"])
        .arg(format!("bs={}", bs * 512))
        .arg(format!("skip={}", skip / bs))
        .arg(format!("count={}", count / bs))
        .arg(format!("if={}", image.display()))
        .arg(format!("of={}", tmp.path().display()))
        .output();
    qemu_img_done(out, "dd", image)?;
    Ok(tmp)
}

/// Checks how a `qemu-img VERB` of `image` went.
fn qemu_img_done(
    out: std::io::Result<std::process::Output>,
    verb: &str,
    image: &Path,
) -> Result<()> {
    let out = out.with_context(|| format!("running qemu-img {verb}"))?;
    if !out.status.success() {
        bail!(
            "qemu-img {verb} of {} failed: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Copies a partition (`count` sectors from `skip`) into a sparse temporary file (removed when
/// dropped) with `qemu-img convert`, which skips what the image never wrote and the zeros: a
/// 1800-MiB root slot holding ~400 MiB of data copies that, where `qemu-img dd` wrote all 1800
/// (9 s with the guest paused, on this host under load).
fn extract_partition(image: &Path, skip: u64, count: u64) -> Result<tempfile::NamedTempFile> {
    let tmp = tempfile::NamedTempFile::new()?;
    let mut magic = [0u8; 4];
    std::fs::File::open(image)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .with_context(|| format!("reading {}", image.display()))?;
    let format = if &magic == b"QFI\xfb" { "qcow2" } else { "raw" };
    // A raw view of the partition over the image; commas in a path are doubled in QEMU options.
    let opts = format!(
        "driver=raw,offset={},size={},file.driver={format},file.file.driver=file,file.file.filename={}",
        skip * 512,
        count * 512,
        image.display().to_string().replace(',', ",,")
    );
    let out = Command::new("qemu-img")
        .args(["convert", "-U", "-O", "raw", "--image-opts", &opts])
        .arg(tmp.path())
        .output();
    qemu_img_done(out, "convert", image)?;
    Ok(tmp)
}

/// The GPT of a disk image, read from its first MiB.
pub fn partitions(image: &Path) -> Result<Vec<Partition>> {
    let head = read_sectors(image, 0, 2048)?;
    let disk = gpt::GptConfig::new()
        .writable(false)
        .only_valid_headers(false)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .open_from_device(std::io::Cursor::new(head))
        .map_err(|e| anyhow!("{}: no readable GPT: {e}", image.display()))?;
    Ok(disk
        .partitions()
        .iter()
        .filter(|(_, p)| p.is_used())
        .map(|(n, p)| Partition {
            number: *n,
            label: p.name.clone(),
            first_lba: p.first_lba,
            last_lba: p.last_lba,
            attributes: p.flags,
        })
        .collect())
}

fn find<'a>(parts: &'a [Partition], label: &str) -> Result<&'a Partition> {
    parts.iter().find(|p| p.label == label).ok_or_else(|| {
        let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        anyhow!(
            "no partition labelled {label} (found: {})",
            labels.join(", ")
        )
    })
}

/// Reads a file from the ext2/3/4 filesystem of partition `label` with debugfs (no mount).
/// A file the guest created but has not written back yet reads as empty.
pub fn read_file(image: &Path, label: &str, path: &str) -> Result<Vec<u8>> {
    let parts = partitions(image)?;
    let p = find(&parts, label)?;
    // The partition goes to a file debugfs reads (BOOT is 64 MiB: held in memory, it made
    // Aviary's peak RSS 82 MiB in a run with one `expect: disk`).
    let fs = extract_partition(image, p.first_lba, p.last_lba - p.first_lba + 1)?;
    // A filesystem the guest has mounted keeps recent writes in its journal: replay it into the
    // copy (never the disk itself) so debugfs sees them. Nothing to do on ext2.
    let _ = Command::new("e2fsck")
        .args(["-E", "journal_only", "-y"])
        .arg(fs.path())
        .output();
    // -c: no bitmaps (those of a filesystem the guest has mounted fail their checksums).
    let out = Command::new("debugfs")
        .arg("-c")
        .arg("-R")
        .arg(format!("cat {path}"))
        .arg(fs.path())
        .output()
        .context("running debugfs (e2fsprogs)")?;
    // debugfs exits 0 on a missing file: its complaint is on stderr, after its version line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaint = stderr
        .lines()
        .filter(|l| !l.starts_with("debugfs "))
        .collect::<Vec<_>>()
        .join("; ");
    if !out.status.success() || (out.stdout.is_empty() && !complaint.trim().is_empty()) {
        bail!(
            "{}: cannot read {path} from partition {label}: {}",
            image.display(),
            stderr.trim()
        );
    }
    // An empty answer is an empty file (or one whose data the guest has not written back yet).
    Ok(out.stdout)
}

/// Parses a GRUB environment block ("# GRUB Environment Block", KEY=value lines, '#' padding).
pub fn parse_grubenv(block: &[u8]) -> Result<BTreeMap<String, String>> {
    let text = String::from_utf8_lossy(block);
    if !text.starts_with("# GRUB Environment Block\n") {
        bail!("not a GRUB environment block");
    }
    Ok(text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// Slot states from RAUC's GRUB scheme: GRUB boots the first slot in ORDER with OK=1 and
/// TRY=0, setting TRY=1; a healthy boot marks it good (TRY=0).
pub fn slots_from_grubenv(env: &BTreeMap<String, String>) -> Vec<SlotState> {
    let order: Vec<String> = env
        .get("ORDER")
        .map(|o| o.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let flag = |k: String| env.get(&k).map(|v| v == "1").unwrap_or(false);
    let next = order
        .iter()
        .find(|s| flag(format!("{s}_OK")) && !flag(format!("{s}_TRY")))
        .cloned();
    let n = order.len();
    order
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let ok = flag(format!("{s}_OK"));
            let tr = flag(format!("{s}_TRY"));
            SlotState {
                slot: s.clone(),
                active: next.as_deref() == Some(s),
                tried: tr,
                good: ok && !tr,
                priority: (n - i) as u8,
            }
        })
        .collect()
}

/// gptprio fields of one partition's attributes.
pub fn gptprio(attributes: u64) -> (u8, u8, bool) {
    (
        ((attributes >> 48) & 0xf) as u8,
        ((attributes >> 52) & 0xf) as u8,
        (attributes >> 56) & 1 == 1,
    )
}

/// Slot states from gptprio bits on the partitions labelled `labels` (slot name = label's
/// last character, e.g. USR-A → A). The bootloader picks the highest priority that is either
/// successful or has tries left.
pub fn slots_from_gptprio(parts: &[Partition], labels: &[&str]) -> Result<Vec<SlotState>> {
    let mut out = Vec::new();
    for l in labels {
        let p = find(parts, l)?;
        let (priority, tries, successful) = gptprio(p.attributes);
        out.push(SlotState {
            slot: l.rsplit('-').next().unwrap_or(l).to_string(),
            active: false,
            tried: !successful && tries == 0 && priority > 0,
            good: successful,
            priority,
        });
    }
    let bootable =
        |s: &SlotState, p: &Partition| s.priority > 0 && (s.good || gptprio(p.attributes).1 > 0);
    let best = out
        .iter()
        .zip(labels)
        .filter(|(s, l)| find(parts, l).map(|p| bootable(s, p)).unwrap_or(false))
        .max_by_key(|(s, _)| s.priority)
        .map(|(s, _)| s.slot.clone());
    for s in &mut out {
        s.active = best.as_deref() == Some(&s.slot);
    }
    Ok(out)
}

/// Slot state of a disk, read the way its OS profile keeps it.
pub fn slots(image: &Path, slots: &crate::profile::Slots) -> Result<Vec<SlotState>> {
    use crate::profile::Offline;
    match slots.offline {
        Offline::GrubEnv => grub_slots(image),
        Offline::Gptprio => {
            let labels = [slots.partitions.A.as_str(), slots.partitions.B.as_str()];
            slots_from_gptprio(&partitions(image)?, &labels)
                .with_context(|| format!("{}: gptprio", image.display()))
        }
    }
}

/// Slot state of a disk whose BOOT partition holds the GRUB environment block at /grubenv.
pub fn grub_slots(image: &Path) -> Result<Vec<SlotState>> {
    let env = parse_grubenv(&read_file(image, "BOOT", "/grubenv")?)
        .with_context(|| format!("{}: BOOT:/grubenv", image.display()))?;
    Ok(slots_from_grubenv(&env))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn grubenv_states_follow_raucs_scheme() {
        // Fresh image: A good and next.
        let s = slots_from_grubenv(&env(&[
            ("ORDER", "A B"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "0"),
            ("B_TRY", "0"),
        ]));
        assert!(s[0].active && s[0].good && !s[0].tried);
        assert!(!s[1].active && !s[1].good);
        assert!(s[0].priority > s[1].priority);
        // B installed and tried once, never marked good: A is next again.
        let s = slots_from_grubenv(&env(&[
            ("ORDER", "B A"),
            ("A_OK", "1"),
            ("A_TRY", "0"),
            ("B_OK", "1"),
            ("B_TRY", "1"),
        ]));
        let b = s.iter().find(|x| x.slot == "B").unwrap();
        let a = s.iter().find(|x| x.slot == "A").unwrap();
        assert!(b.tried && !b.good && !b.active);
        assert!(a.active && a.good);
    }

    #[test]
    fn grubenv_block_is_parsed() {
        let mut block = b"# GRUB Environment Block\nORDER=B A\nA_OK=1\n".to_vec();
        block.resize(1024, b'#');
        let m = parse_grubenv(&block).unwrap();
        assert_eq!(m["ORDER"], "B A");
        assert_eq!(m["A_OK"], "1");
        assert!(parse_grubenv(b"junk").is_err());
    }

    #[test]
    fn gptprio_bits() {
        let a = (1u64 << 56) | (2u64 << 48);
        assert_eq!(gptprio(a), (2, 0, true));
        let b = (1u64 << 48) | (1u64 << 52);
        assert_eq!(gptprio(b), (1, 1, false));
    }

    fn sh(cmd: &str) {
        let st = Command::new("sh").arg("-ec").arg(cmd).status().unwrap();
        assert!(st.success(), "{cmd}");
    }

    /// A real GPT image made with sgdisk, converted to qcow2: gptprio bits read offline.
    #[test]
    fn gptprio_on_an_sgdisk_image_read_through_qcow2() {
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("d.raw");
        let q = d.path().join("d.qcow2");
        sh(&format!(
            "truncate -s 16M {r}
             sgdisk -n 1:2048:+4M -c 1:USR-A -n 2:0:+4M -c 2:USR-B {r} >/dev/null
             sgdisk --attributes=1:set:56 --attributes=1:set:49 {r} >/dev/null
             sgdisk --attributes=2:set:48 --attributes=2:set:53 {r} >/dev/null
             qemu-img convert -f raw -O qcow2 {r} {q}",
            r = raw.display(),
            q = q.display()
        ));
        let parts = partitions(&q).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].label, "USR-A");
        assert_eq!(gptprio(parts[0].attributes), (2, 0, true));
        assert_eq!(gptprio(parts[1].attributes), (1, 2, false));
        let s = slots_from_gptprio(&parts, &["USR-A", "USR-B"]).unwrap();
        assert!(s[0].active && s[0].good && s[0].priority == 2);
        assert!(!s[1].active && !s[1].good && !s[1].tried);
        // B gets the top priority with one try: it is next.
        sh(&format!(
            "sgdisk --attributes=2:set:49 {r} >/dev/null; qemu-img convert -f raw -O qcow2 {r} {q}",
            r = raw.display(),
            q = q.display()
        ));
        // Read the way the Flatcar profile says: gptprio on USR-A/USR-B.
        let flatcar = crate::profile::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/profiles/flatcar.yaml"),
        )
        .unwrap();
        let s = slots(&q, &flatcar.slots).unwrap();
        assert!(s[1].active && s[1].priority == 3);
    }

    /// A BOOT partition with a real grubenv made by grub-editenv, read offline from qcow2.
    #[test]
    fn grubenv_read_offline_from_a_qcow2_disk() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        sh(&format!(
            "cd {p}
             mkdir boot
             grub-editenv boot/grubenv create
             grub-editenv boot/grubenv set ORDER='B A' A_OK=1 A_TRY=0 B_OK=1 B_TRY=1
             truncate -s 8M boot.ext2
             mke2fs -q -t ext2 -d boot boot.ext2
             truncate -s 16M disk.raw
             sgdisk -n 1:2048:+8M -c 1:BOOT disk.raw >/dev/null
             dd if=boot.ext2 of=disk.raw bs=512 seek=2048 conv=notrunc status=none
             qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2",
            p = p.display()
        ));
        let s = grub_slots(&p.join("disk.qcow2")).unwrap();
        let b = s.iter().find(|x| x.slot == "B").unwrap();
        assert!(b.tried && !b.good && !b.active, "{s:?}");
        assert!(s.iter().find(|x| x.slot == "A").unwrap().active);
        // The same disk as a raw file reads the same.
        assert_eq!(grub_slots(&p.join("disk.raw")).unwrap(), s);
        let e = grub_slots(&p.join("disk.raw").with_file_name("missing.qcow2")).unwrap_err();
        assert!(e.to_string().contains("missing.qcow2"), "{e}");
    }
}
