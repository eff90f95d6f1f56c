//! What to tell a user whose machine refuses io_uring, or whose kernel is too old.
//!
//! `io_uring_setup` fails for a handful of reasons that all look alike from the errno,
//! and each has a different fix. We read what the process can see (`/proc`, rlimits,
//! `uname`) to name the likely cause instead of printing "Operation not permitted".

use std::fmt;
use std::io;

use crate::ring::{KernelFeature, MINIMUM_KERNEL};
use crate::sys::kernel_release;

/// The error inside the `io::Error` that [`crate::Ring::new`] returns when the kernel
/// refuses to create a ring, or lacks a feature of the Linux 6.1 floor. Reach it with
/// `err.get_ref()` and `downcast_ref`.
///
/// ```
/// # fn main() {
/// match uringo_uring::Ring::new() {
///     Ok(_ring) => {}
///     Err(err) => {
///         if let Some(why) = err
///             .get_ref()
///             .and_then(|e| e.downcast_ref::<uringo_uring::UnavailableError>())
///         {
///             eprintln!("io_uring unavailable (errno {}): {why}", why.errno());
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct UnavailableError {
    errno: i32,
    message: String,
    missing: Option<KernelFeature>,
}

impl UnavailableError {
    /// The errno the kernel returned (EINVAL for a missing feature).
    pub fn errno(&self) -> i32 {
        self.errno
    }

    /// The required kernel feature this kernel lacks, when that is the cause.
    pub fn missing_feature(&self) -> Option<KernelFeature> {
        self.missing
    }
}

impl fmt::Display for UnavailableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnavailableError {}

/// Turns the errno of a failed `io_uring_setup` into an error that names cause and fix.
pub(crate) fn setup_failed(err: io::Error) -> io::Error {
    let Some(errno) = err.raw_os_error() else {
        return err;
    };
    let message = match errno {
        libc::EPERM => eperm_message(),
        libc::ENOSYS => format!(
            "io_uring_setup failed with ENOSYS: this kernel (Linux {}) has no io_uring (built \
             without CONFIG_IO_URING, or older than 5.1), or a seccomp filter makes the \
             syscall look absent. uringo needs Linux >= {MINIMUM_KERNEL} with io_uring; \
             inside a container, allow io_uring_setup, io_uring_enter and io_uring_register \
             in its seccomp profile.",
            kernel_release()
        ),
        libc::ENOMEM => enomem_message(),
        libc::EINVAL => format!(
            "io_uring_setup failed with EINVAL even with the most basic parameters: either \
             the ring size is beyond this kernel's limits (32768 SQ entries, 65536 CQ \
             entries), or this kernel's io_uring (Linux {}) is far older than uringo needs \
             (Linux >= {MINIMUM_KERNEL}).",
            kernel_release()
        ),
        libc::EMFILE | libc::ENFILE => format!(
            "io_uring_setup failed: out of file descriptors ({err}); raise `ulimit -n` or \
             close fds"
        ),
        _ => format!("io_uring_setup failed: {err}"),
    };
    io::Error::new(
        err.kind(),
        UnavailableError {
            errno,
            message,
            missing: None,
        },
    )
}

/// The error for a kernel without `feature`, one of the Linux 6.1 floor.
pub(crate) fn kernel_lacks(feature: KernelFeature) -> io::Error {
    let message = format!(
        "this kernel (Linux {}) lacks {feature}, which uringo needs: uringo runs on Linux \
         >= {MINIMUM_KERNEL} (io_uring with SINGLE_ISSUER, DEFER_TASKRUN, multishot accept and \
         recv, provided buffer rings, cancel-any, SEND_ZC and MSG_RING). Upgrade the kernel \
         (6.1 is a long-term release; a distribution kernel that backports io_uring may \
         also do).",
        kernel_release()
    );
    io::Error::new(
        io::ErrorKind::Unsupported,
        UnavailableError {
            errno: libc::EINVAL,
            message,
            missing: Some(feature),
        },
    )
}

fn eperm_message() -> String {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let seccomp = proc_status_field("Seccomp");
    let mut msg =
        String::from("io_uring_setup failed with EPERM: io_uring is forbidden for this process.");
    msg.push_str(match disabled {
        Some(2) => {
            " Cause: the sysctl kernel.io_uring_disabled is 2, which disables io_uring for \
             every process. Fix: `sysctl -w kernel.io_uring_disabled=0`."
        }
        Some(1) => {
            " Likely cause: the sysctl kernel.io_uring_disabled is 1, which limits io_uring to \
             root and the group named by kernel.io_uring_group. Fix: `sysctl -w \
             kernel.io_uring_disabled=0`, or run as a member of that group."
        }
        Some(_) => " The sysctl kernel.io_uring_disabled is 0, so it is not the cause.",
        None => {
            " Check the sysctl kernel.io_uring_disabled (0 allows io_uring; kernels before 6.6 \
             do not have it)."
        }
    });
    msg.push_str(match seccomp.as_deref() {
        Some("2") => {
            " Likely cause: a seccomp filter is active on this process (Seccomp: 2 in \
             /proc/self/status) and denies io_uring_setup; Docker >= 25 and containerd deny \
             io_uring by default. Fix: run with a seccomp profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register (e.g. `docker run --security-opt \
             seccomp=<profile.json>`)."
        }
        Some("0") => " No seccomp filter is active on this process.",
        _ => {
            " A seccomp filter can also cause this (Docker >= 25 denies io_uring by default): \
             allow io_uring_setup, io_uring_enter and io_uring_register in its profile."
        }
    });
    msg
}

fn enomem_message() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let memlock = if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } == 0 {
        format!("{} bytes", limit.rlim_cur)
    } else {
        "unknown".to_string()
    };
    format!(
        "io_uring_setup failed with ENOMEM: the ring's memory could not be allocated or \
         locked on this kernel (Linux {}). Kernels before 5.12 count rings against \
         RLIMIT_MEMLOCK (currently {memlock}): raise it (`ulimit -l unlimited`, or \
         LimitMEMLOCK= in systemd, or --ulimit memlock=-1 in Docker), and note that uringo \
         needs Linux >= {MINIMUM_KERNEL} anyway. On newer kernels ring memory is charged to \
         the memory cgroup: check its limit, or use fewer/smaller rings \
         (Builder::ring_entries).",
        kernel_release()
    )
}

fn proc_status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_string())
    })
}
