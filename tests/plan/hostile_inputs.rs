//! Hostile plan files, one generator per input class. Shared by the hostile-input tests and by
//! `benches/hostile_plans.rs`, so the benchmark measures exactly the inputs the tests prove bounded.

/// A valid plan header the hostile parts are appended to, so validation gets past "missing field".
pub const HEADER: &str = "name: app\nnamespace: default\ntargets: [data]\n";

/// One named input: file name (its extension picks the format) and its bytes.
pub struct Input {
    pub class: &'static str,
    pub file: &'static str,
    pub bytes: Vec<u8>,
}

/// "Billion laughs": `levels` anchors, each a list of `width` aliases of the previous one. Tiny on disk,
/// `width^levels` nodes when expanded naively.
pub fn alias_bomb(levels: usize, width: usize) -> String {
    let mut s = String::from(HEADER);
    s.push_str("vars:\n  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..=levels {
        let aliases = vec![format!("*l{}", level - 1); width].join(", ");
        s.push_str(&format!("  l{level}: &l{level} [{aliases}]\n"));
    }
    s
}

/// One line of `bytes` characters in a value that fails validation (a plan name), so a diagnostic's label
/// spans the whole line.
pub fn long_line(bytes: usize) -> String {
    format!(
        "name: \"{}\"\nnamespace: default\ntargets: [data]\n",
        "A".repeat(bytes)
    )
}

/// A very wide value on a line of its own, with an unknown key after it on the same line (flow mapping),
/// so the label sits far to the right.
pub fn wide_flow(bytes: usize) -> String {
    format!(
        "{HEADER}snapshot: {{clas: \"{}\", colour: red}}\n",
        "w".repeat(bytes)
    )
}

/// `count` unknown top-level keys, one per line.
pub fn many_unknown_keys(count: usize) -> String {
    let mut s = String::from(HEADER);
    for i in 0..count {
        s.push_str(&format!("unknown{i}: 1\n"));
    }
    s
}

/// `count` distinct targets (duplicate checks must stay linear in them), the last one a duplicate.
pub fn many_targets(count: usize) -> String {
    let names: Vec<String> = (0..count).map(|i| format!("pvc-{i}")).collect();
    format!("name: app\ntargets: [{}, pvc-0]\n", names.join(", "))
}

/// `count` named exec hooks (hook-name uniqueness must stay linear), the last name a duplicate.
pub fn many_hooks(count: usize) -> String {
    let mut s = format!("{HEADER}hooks:\n  pre:\n");
    for i in 0..count {
        s.push_str(&format!(
            "    - {{name: h{i}, type: exec, workload: deployment/app, container: app, command: [sync]}}\n"
        ));
    }
    s.push_str(
        "    - {name: h0, type: exec, workload: deployment/app, container: app, command: [sync]}\n",
    );
    s
}

/// `count` unknown keys in one flow mapping on a single line.
pub fn many_keys_one_line(count: usize) -> String {
    let keys: Vec<String> = (0..count).map(|i| format!("k{i}: 1")).collect();
    format!("{HEADER}snapshot: {{{}}}\n", keys.join(", "))
}

/// `depth` nested flow lists.
pub fn deep_yaml(depth: usize) -> String {
    format!(
        "{HEADER}vars: {{x: {}{}}}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// `depth` nested inline arrays in TOML.
pub fn deep_toml(depth: usize) -> String {
    format!(
        "name = \"app\"\ntargets = [\"data\"]\n[vars]\nx = {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// `count` unknown keys in TOML.
pub fn many_unknown_keys_toml(count: usize) -> String {
    let mut s = String::from("name = \"app\"\ntargets = [\"data\"]\n");
    for i in 0..count {
        s.push_str(&format!("unknown{i} = 1\n"));
    }
    s
}

/// A plan with an invalid UTF-8 byte sequence on line 3.
pub fn invalid_utf8() -> Vec<u8> {
    let mut b = HEADER.as_bytes().to_vec();
    b.extend_from_slice(b"vars: {x: \"caf\xe9\"}\n");
    b
}

/// A plan with a NUL byte inside a value on line 4.
pub fn nul_byte() -> Vec<u8> {
    let mut b = HEADER.as_bytes().to_vec();
    b.extend_from_slice(b"vars: {x: \"a\0b\"}\n");
    b
}

/// A valid plan that starts with a UTF-8 byte order mark.
pub fn bom() -> Vec<u8> {
    let mut b = vec![0xEF, 0xBB, 0xBF];
    b.extend_from_slice(HEADER.as_bytes());
    b
}

/// Random bytes (a fixed xorshift, so the input is the same on every run).
pub fn garbage(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Just over the size limit (10 MiB), as a comment so that only the size is wrong.
pub fn oversized() -> Vec<u8> {
    let mut b = HEADER.as_bytes().to_vec();
    let line = format!("# {}\n", "x".repeat(1021));
    while b.len() <= 10 * 1024 * 1024 {
        b.extend_from_slice(line.as_bytes());
    }
    b
}

/// Every class at the size the benchmark uses (close to the 10 MiB limit where the class allows).
pub fn bench_inputs() -> Vec<Input> {
    const NEAR_LIMIT: usize = 10 * 1024 * 1024 - 4096;
    let lines_of = |line: usize| NEAR_LIMIT / line;
    vec![
        Input {
            class: "alias-bomb",
            file: "alias-bomb.yaml",
            bytes: alias_bomb(12, 9).into_bytes(),
        },
        Input {
            class: "long-line",
            file: "long-line.yaml",
            bytes: long_line(NEAR_LIMIT).into_bytes(),
        },
        Input {
            class: "wide-flow-value",
            file: "wide-flow.yaml",
            bytes: wide_flow(NEAR_LIMIT).into_bytes(),
        },
        Input {
            class: "many-unknown-keys",
            file: "many-keys.yaml",
            bytes: many_unknown_keys(lines_of(16)).into_bytes(),
        },
        Input {
            class: "many-targets",
            file: "many-targets.yaml",
            bytes: many_targets(90_000).into_bytes(),
        },
        Input {
            class: "many-named-hooks",
            file: "many-hooks.yaml",
            bytes: many_hooks(12_000).into_bytes(),
        },
        Input {
            class: "many-keys-one-line",
            file: "many-keys-one-line.yaml",
            bytes: many_keys_one_line(lines_of(12)).into_bytes(),
        },
        Input {
            class: "many-unknown-keys-toml",
            file: "many-keys.toml",
            bytes: many_unknown_keys_toml(lines_of(18)).into_bytes(),
        },
        Input {
            class: "deep-nesting-yaml",
            file: "deep.yaml",
            bytes: deep_yaml(NEAR_LIMIT / 2).into_bytes(),
        },
        Input {
            class: "deep-nesting-toml",
            file: "deep.toml",
            bytes: deep_toml(NEAR_LIMIT / 2).into_bytes(),
        },
        Input {
            class: "invalid-utf8",
            file: "invalid-utf8.yaml",
            bytes: invalid_utf8(),
        },
        Input {
            class: "nul-byte",
            file: "nul.yaml",
            bytes: nul_byte(),
        },
        Input {
            class: "bom",
            file: "bom.yaml",
            bytes: bom(),
        },
        Input {
            class: "garbage-yaml",
            file: "garbage.yaml",
            bytes: garbage(NEAR_LIMIT),
        },
        Input {
            class: "garbage-toml",
            file: "garbage.toml",
            bytes: garbage(NEAR_LIMIT),
        },
        Input {
            class: "oversized",
            file: "oversized.yaml",
            bytes: oversized(),
        },
    ]
}
