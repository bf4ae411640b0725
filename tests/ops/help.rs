//! Every operator command's `--help` ends with examples.

use assert_cmd::Command;

#[test]
fn every_operator_command_help_shows_examples() {
    for command in ["list", "restore", "delete", "adhoc"] {
        let out = Command::cargo_bin("backup-ns")
            .unwrap()
            .env_clear()
            .args([command, "--help"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Examples:\n  backup-ns "),
            "{command}: {text}"
        );
        assert!(
            !text.contains("\x1b["),
            "no colour without a terminal: {command}"
        );
    }
}
