//! io_uring denied by a seccomp filter: `Ring::new` must say so and say how to fix it.
//!
//! The test re-runs this test binary as a child process with a seccomp filter that makes
//! `io_uring_setup` fail with EPERM (what Docker >= 25's default profile does), and the
//! child checks the error it gets.

use std::os::unix::process::CommandExt;
use std::process::Command;

const CHILD_ENV: &str = "URINGO_SECCOMP_CHILD";
const TEST_NAME: &str = "io_uring_denied_by_seccomp_names_cause_and_fix";

#[test]
fn io_uring_denied_by_seccomp_names_cause_and_fix() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let filter = deny_io_uring_setup_filter();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1");
    // SAFETY: the closure only makes two syscalls (prctl, seccomp) on memory prepared
    // before the fork; both are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || install(&filter));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(
        stdout.contains("CHILD-CHECKED"),
        "the child did not run the check\n{stdout}"
    );
}

fn child() {
    let err = uringo_uring::Ring::new().expect_err("io_uring_setup should be denied");
    let text = err.to_string();
    println!("error seen by the child: {text}");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<uringo_uring::UnavailableError>())
        .expect("the error carries an UnavailableError");
    assert_eq!(inner.errno(), libc::EPERM);
    for needle in [
        "EPERM",
        "seccomp filter is active",
        "io_uring_setup, io_uring_enter and io_uring_register",
        "kernel.io_uring_disabled",
        "Docker >= 25",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
    println!("CHILD-CHECKED");
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// BPF: if arch matches and nr == io_uring_setup, return EPERM; else allow.
fn deny_io_uring_setup_filter() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    vec![
        stmt(LD_W_ABS, 4), // seccomp_data.arch
        jump(JEQ_K, AUDIT_ARCH, 0, 3),
        stmt(LD_W_ABS, 0), // seccomp_data.nr
        jump(JEQ_K, libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ]
}

fn install(filter: &[libc::sock_filter]) -> std::io::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl calls; `prog` points at a live filter array for the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
