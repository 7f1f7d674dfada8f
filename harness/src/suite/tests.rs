//! Loader tests: good suites load, broken ones name file:line:column and the field.

use super::*;
use std::path::Path;

fn ctx() -> LoadContext {
    LoadContext {
        channels: vec!["stable".into(), "beta".into(), "alpha".into()],
    }
}

fn load(text: &str) -> Result<Suite, LoadErrors> {
    load_str(Path::new("suites/t.yaml"), text, &ctx())
}

fn one_error(text: &str) -> LoadError {
    let errs = load(text).expect_err("suite should be rejected").0;
    assert_eq!(errs.len(), 1, "expected one error, got {errs:?}");
    errs.into_iter().next().unwrap()
}

const GOOD: &str = r#"
suite: demo
tests:
  - name: hello
    timeout: 2m
    machines:
      node:
        image: beta
        memory: 768
        ignition:
          hostname: n1
          files:
            - { path: /etc/x, contents: "hi\n", mode: "0640", user: core }
          units:
            - name: hello.service
              enabled: true
              contents: |
                [Service]
                ExecStart=/bin/true
    steps:
      - run: { on: node, cmd: "echo {{ image.version }}", stdout: "^{{ image.version }}$" }
      - wait_for: { on: node, unit: hello.service, timeout: 30s }
      - reboot: node
      - expect: { on: node, slot: A, kernel: "{{ images.stable.kernel_release }}", os_release: { ID: aviary } }
"#;

#[test]
fn loads_a_good_suite() {
    let s = load(GOOD).unwrap();
    assert_eq!(s.name, "demo");
    let t = &s.tests[0];
    assert_eq!(t.name, "hello");
    assert_eq!(t.timeout, std::time::Duration::from_secs(120));
    assert_eq!(t.machines[0].image, ImageRef::Channel("beta".into()));
    assert_eq!(t.machines[0].memory_mib, 768);
    assert_eq!(t.machines[0].ignition.files[0].mode, 0o640);
    assert_eq!(t.steps.len(), 4);
    assert!(matches!(t.steps[2].kind, StepKind::Reboot));
    assert_eq!(t.steps[2].on, "node");
    assert_eq!(t.steps[0].loc.line, 21);
    assert!(matches!(
        t.steps[3].kind,
        StepKind::Expect(ExpectStep {
            slot: Some(Slot::A),
            ..
        })
    ));
}

#[test]
fn unknown_key_is_located() {
    let e = one_error("suite: s\ntests:\n  - name: a\n    machines: { n: {} }\n    stepz: []\n");
    assert_eq!((e.loc.line, e.loc.column), (5, 5), "{e}");
    assert!(e.message.contains("stepz"), "{e}");
    assert!(e.to_string().starts_with("suites/t.yaml:5:5: "), "{e}");
}

#[test]
fn bad_duration_names_field_and_place() {
    let e = one_error(
        "suite: s\ntests:\n  - name: a\n    timeout: 5 minutes\n    machines: { n: {} }\n    steps:\n      - reboot: n\n",
    );
    assert_eq!(e.field, "tests[0].timeout");
    assert_eq!((e.loc.line, e.loc.column), (4, 14));
    assert!(e.message.contains("not a duration"), "{e}");
}

#[test]
fn undeclared_machine_is_located_at_the_reference() {
    let e = one_error(
        "suite: s\ntests:\n  - name: a\n    machines: { node: {} }\n    steps:\n      - run: { on: nod, cmd: true }\n",
    );
    assert_eq!(e.field, "tests[0].steps[0].run.on");
    assert_eq!((e.loc.line, e.loc.column), (6, 20));
    assert!(e.message.contains("`nod` is not declared"), "{e}");
    assert!(e.message.contains("declared: node"), "{e}");
    assert!(e.hint.is_some());
}

#[test]
fn unknown_step_verb_is_rejected() {
    let e = one_error(
        "suite: s\ntests:\n  - name: a\n    machines: { n: {} }\n    steps:\n      - jump: n\n",
    );
    assert_eq!(e.loc.line, 6, "{e}");
    assert!(e.message.contains("jump"), "{e}");
}

#[test]
fn collects_every_semantic_error() {
    let errs = load(
        "suite: s\ntests:\n  - name: a\n    machines: { n: { image: gamma } }\n    steps:\n      - reboot: m\n      - wait_for: { on: n, unit: x.service, port: 22 }\n      - expect: { on: n, slot: C }\n",
    )
    .unwrap_err()
    .0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "tests[0].machines.n.image",
            "tests[0].steps[0].reboot",
            "tests[0].steps[1].wait_for",
            "tests[0].steps[2].expect.slot",
        ]
    );
    assert!(errs[0].message.contains("unknown image `gamma`"));
}

#[test]
fn duplicate_tests_bad_regex_and_bad_template() {
    let errs = load(
        "suite: s\ntests:\n  - name: a\n    machines: { n: {} }\n    steps:\n      - run: { on: n, cmd: x, stdout: \"(\" }\n  - name: a\n    machines: { n: {} }\n    steps:\n      - run: { on: n, cmd: \"{{ image.colour }}\" }\n",
    )
    .unwrap_err()
    .0;
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].message.contains("invalid regular expression"));
    assert!(errs[1].message.contains("duplicate test name `a`"));
    assert!(errs[2].message.contains("unknown placeholder"));
}

#[test]
fn bad_mode_hostname_and_unit_name() {
    let errs = load(
        "suite: s\ntests:\n  - name: a\n    machines:\n      n:\n        ignition:\n          hostname: -bad\n          files: [{ path: etc/x, mode: \"0999\" }]\n          units: [{ name: foo, enabled: true }]\n    steps:\n      - reboot: n\n",
    )
    .unwrap_err()
    .0;
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "tests[0].machines.n.ignition.hostname",
            "tests[0].machines.n.ignition.files[0].path",
            "tests[0].machines.n.ignition.files[0].mode",
            "tests[0].machines.n.ignition.units[0].name",
        ]
    );
}

#[test]
fn malformed_yaml_is_located() {
    let e = one_error("suite: s\ntests: [\n");
    assert!(e.loc.line >= 2, "{e}");
}

#[test]
fn every_shipped_suite_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            load_file(&p, &ctx()).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 1, "no suites found in {}", dir.display());
}

#[test]
fn ignition_files_can_come_from_host_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("member.sh"), "#!/bin/sh\necho member\n").unwrap();
    let suite = |file: &str| {
        format!(
            "suite: s\ntests:\n  - name: t\n    machines:\n      node:\n        ignition:\n          files:\n            - {file}\n    steps:\n      - reboot: node\n"
        )
    };
    let path = dir.path().join("s.yaml");
    let s = load_str(
        &path,
        &suite("{ path: /etc/m, from_host: member.sh, mode: \"0755\" }"),
        &ctx(),
    )
    .unwrap();
    let f = &s.tests[0].machines[0].ignition.files[0];
    assert_eq!(
        (f.contents.as_str(), f.mode),
        ("#!/bin/sh\necho member\n", 0o755)
    );

    let errs = load_str(
        &path,
        &suite("{ path: /etc/m, from_host: nope.sh }"),
        &ctx(),
    )
    .unwrap_err()
    .0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        errs[0].field,
        "tests[0].machines.node.ignition.files[0].from_host"
    );
    assert!(
        errs[0].message.contains("nope.sh") && errs[0].loc.line == 8,
        "{}",
        errs[0]
    );

    let errs = load_str(
        &path,
        &suite("{ path: /etc/m, contents: x, from_host: member.sh }"),
        &ctx(),
    )
    .unwrap_err()
    .0;
    assert!(
        errs[0].message.contains("either contents or from_host"),
        "{}",
        errs[0]
    );
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Arbitrary edits of a good suite never panic, and every rejection is located.
        #[test]
        fn loader_never_panics(cut in 0usize..GOOD.len(), junk in "\\PC{0,8}") {
            let mut text = GOOD.to_string();
            let cut = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap();
            text.insert_str(cut, &junk);
            if let Err(errs) = load(&text) {
                for e in errs.0 {
                    prop_assert!(!e.message.is_empty());
                    prop_assert_eq!(e.loc.file.to_str(), Some("suites/t.yaml"));
                }
            }
        }
    }
}

#[test]
fn machines_of_one_test_share_a_segment_and_know_each_others_names() {
    let s = load(
        r#"
suite: c
tests:
  - name: t
    machines:
      b: { address: 10.77.0.42/24 }
      a: { ignition: { hostname: alpha } }
      c: {}
    steps: [ { run: { on: a, cmd: "true" } } ]
"#,
    )
    .unwrap();
    let m = &s.tests[0].machines;
    let nic = |i: usize| m[i].cluster.clone().expect("a cluster NIC");
    assert_eq!(
        [m[0].name.as_str(), m[1].name.as_str(), m[2].name.as_str()],
        ["a", "b", "c"]
    );
    assert_eq!(nic(0).address.to_string(), "10.77.0.11");
    assert_eq!(nic(1).address.to_string(), "10.77.0.42");
    assert_eq!(nic(2).address.to_string(), "10.77.0.13");
    let macs: std::collections::BTreeSet<String> = (0..3).map(|i| nic(i).mac).collect();
    assert_eq!(macs.len(), 3);
    // The Ignition file a machine gets at `path`.
    let file = |i: usize, path: &str| -> String {
        let f = m[i].ignition.files.iter().find(|f| f.path == path);
        f.unwrap_or_else(|| panic!("{path} missing"))
            .contents
            .clone()
    };
    let hosts = file(2, "/etc/hosts");
    assert!(hosts.contains("10.77.0.11\talpha a\n"), "{hosts}");
    assert!(hosts.contains("10.77.0.42\tb\n"), "{hosts}");
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"));
    let net = file(1, "/etc/systemd/network/10-aviary-cluster.network");
    assert!(net.contains(&format!("MACAddress={}", nic(1).mac)));
    assert!(net.contains("Address=10.77.0.42/24"));
}

#[test]
fn a_single_machine_has_no_segment() {
    let s = load(GOOD).unwrap();
    assert!(s.tests[0].machines.iter().all(|m| m.cluster.is_none()));
}

#[test]
fn cluster_addresses_are_checked() {
    let t = |a: &str, b: &str| {
        format!(
            "suite: c\ntests:\n  - name: t\n    machines:\n      a: {{ address: {a} }}\n      b: {{ address: {b} }}\n    steps: [ {{ run: {{ on: a, cmd: \"true\" }} }} ]\n"
        )
    };
    let e = one_error(&t("10.77.0.11/24", "10.78.0.12/24"));
    assert_eq!(e.field, "tests[0].machines.b.address");
    assert!(
        e.message
            .contains("not in the cluster's subnet 10.77.0.0/24"),
        "{e}"
    );
    assert_eq!((e.loc.line, e.loc.column), (6, 21));
    let e = one_error(&t("10.77.0.11/24", "10.77.0.11/24"));
    assert!(e.message.contains("already the address of `a`"), "{e}");
    let e = one_error(&t("10.77.0.11", "10.77.0.12/24"));
    assert_eq!(e.field, "tests[0].machines.a.address");
    assert!(e.message.contains("has no /prefix"), "{e}");
    let e = one_error(&t("10.77.0.0/24", "10.77.0.12/24"));
    assert!(e.message.contains("network or broadcast"), "{e}");
}

#[test]
fn boot_mode_defaults_to_snapshot_and_a_suite_or_test_can_ask_for_cold() {
    let one = |boot_lines: &str, test_line: &str| {
        format!(
            "suite: s\n{boot_lines}tests:\n  - name: a\n{test_line}    machines: {{ node: {{}} }}\n    steps:\n      - run: {{ on: node, cmd: \"true\" }}\n"
        )
    };
    assert_eq!(
        load(&one("", "")).unwrap().tests[0].boot,
        BootMode::Snapshot
    );
    let cold_suite = one("defaults: { boot: cold }\n", "");
    assert_eq!(load(&cold_suite).unwrap().tests[0].boot, BootMode::Cold);
    let test_wins = one("defaults: { boot: cold }\n", "    boot: snapshot\n");
    assert_eq!(load(&test_wins).unwrap().tests[0].boot, BootMode::Snapshot);
    let e = one_error(&one("", "    boot: warm\n"));
    assert_eq!(e.field, "tests[0].boot");
    assert_eq!(e.loc.line, 4);
    assert!(
        e.message
            .contains("unknown boot mode `warm`; expected `snapshot` or `cold`"),
        "{e:?}"
    );
}

#[test]
fn too_many_machines_is_an_error_not_a_panic() {
    // Cluster addresses count up from 10.77.0.11 (a u8): 245 machines used to overflow it.
    let machines: String = (0..300).map(|i| format!("      m{i}: {{}}\n")).collect();
    let text = format!(
        "suite: s\ntests:\n  - name: a\n    machines:\n{machines}    steps:\n      - reboot: m0\n"
    );
    let e = one_error(&text);
    assert_eq!(e.field, "tests[0].machines");
    assert_eq!((e.loc.line, e.loc.column), (5, 7), "{e}");
    assert!(
        e.message
            .contains("300 machines; a test declares at most 64"),
        "{e}"
    );
}

#[test]
fn a_from_host_that_is_not_a_regular_file_is_refused_unread() {
    // /dev/zero would be read forever.
    let e = one_error(
        "suite: s\ntests:\n  - name: a\n    machines:\n      node: { ignition: { files: [ { path: /x, from_host: /dev/zero } ] } }\n    steps:\n      - reboot: node\n",
    );
    assert_eq!(
        e.field,
        "tests[0].machines.node.ignition.files[0].from_host"
    );
    assert!(
        e.message
            .contains("host file `/dev/zero` is not a regular file"),
        "{e}"
    );
}

#[test]
fn setup_steps_come_first_and_are_counted() {
    let s = load(
        "suite: s\ntests:\n  - name: t\n    machines: { node: { image: stable } }\n    setup:\n      - update: { on: node, to: beta }\n      - run: { on: node, cmd: \"true\" }\n    steps:\n      - reboot: node\n",
    )
    .unwrap();
    let t = &s.tests[0];
    assert_eq!(t.setup, 2);
    assert_eq!(t.steps.len(), 3);
    assert!(matches!(t.steps[0].kind, StepKind::Update(ref u) if u.to == "beta"));
    assert_eq!(t.steps[0].loc.line, 6);
    assert!(matches!(t.steps[2].kind, StepKind::Reboot));
    // No setup: nothing counted.
    assert_eq!(load(GOOD).unwrap().tests[0].setup, 0);
}

#[test]
fn a_bad_setup_step_names_its_field_and_an_empty_setup_is_refused() {
    let e = one_error(
        "suite: s\ntests:\n  - name: t\n    machines: { node: { image: stable } }\n    setup:\n      - reboot: other\n    steps:\n      - reboot: node\n",
    );
    assert_eq!(e.field, "tests[0].setup[0].reboot");
    assert_eq!(e.loc.line, 6, "{e:?}");
    let e = one_error(
        "suite: s\ntests:\n  - name: t\n    machines: { node: { image: stable } }\n    setup: []\n    steps:\n      - reboot: node\n",
    );
    assert_eq!(e.field, "tests[0].setup");
    assert!(e.message.contains("empty setup"), "{e:?}");
}

#[test]
fn firmware_secure_boot_and_tpm_are_machine_settings() {
    let one = |m: &str| {
        format!("suite: s\ntests:\n  - name: t\n    machines: {{ node: {m} }}\n    steps: [ {{ reboot: node }} ]\n")
    };
    let s = load(&one("{ firmware: uefi, secure_boot: true, tpm: true }")).unwrap();
    let m = &s.tests[0].machines[0];
    assert_eq!(m.firmware, Some(crate::profile::Firmware::Uefi));
    assert!(m.secure_boot && m.tpm);
    let m = &load(&one("{}")).unwrap().tests[0].machines[0];
    assert_eq!((m.firmware, m.secure_boot, m.tpm), (None, false, false));
    let e = one_error(&one("{ firmware: efi }"));
    assert_eq!(
        (e.loc.line, e.field.as_str()),
        (4, "tests[0].machines.node.firmware")
    );
    assert!(e.message.contains("expected bios or uefi"), "{}", e.message);
    let e = one_error(&one("{ firmware: bios, secure_boot: true }"));
    assert_eq!(e.field, "tests[0].machines.node.secure_boot");
    assert!(e.message.contains("firmware: uefi"), "{}", e.message);
}
