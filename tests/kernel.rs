//! semprep against the real kernel, each test in its own IPC namespace.

mod common;
use common::*;

#[test]
fn removes_every_residual_cookie_state() {
    let sb = Sandbox::new();
    sb.limits("250 32000 32 128");
    let mut cookies = Vec::new();
    for state in ["created", "setval", "ops", "completed", "waited"] {
        cookies.extend(fixture(&["cookie", "--count", "3", "--state", state]));
    }
    assert_eq!(semids().len(), 15);
    let o = sb.run(&["run", "--min-age", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(semids(), Vec::<i32>::new());
    assert!(stderr(&o).contains("removed 15 residual dm cookies"), "{}", stderr(&o));
}
