//! What to tell a user whose machine refuses io_uring.
//!
//! `io_uring_setup` fails for a handful of reasons that all look alike from the errno,
//! and each has a different fix. We read what the process can see (`/proc`, rlimits) to
//! name the likely cause instead of printing "Operation not permitted".

use std::fmt;
use std::io;

/// The error inside the `io::Error` that [`crate::Ring::new`] returns when the kernel
/// refuses to create a ring. Reach it with `err.get_ref()` and `downcast_ref`.
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
}

impl UnavailableError {
    /// The errno `io_uring_setup(2)` returned.
    pub fn errno(&self) -> i32 {
        self.errno
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
        libc::ENOSYS => "io_uring_setup failed with ENOSYS: this kernel has no io_uring \
             (built without CONFIG_IO_URING, or older than 5.1), or a seccomp filter makes \
             the syscall look absent. uringo needs Linux >= 5.11 with io_uring; inside a \
             container, allow io_uring_setup, io_uring_enter and io_uring_register in its \
             seccomp profile."
            .to_string(),
        libc::ENOMEM => enomem_message(),
        libc::EINVAL => "io_uring_setup failed with EINVAL even with the most basic \
             parameters: this kernel's io_uring is too old for uringo (Linux >= 5.11 is \
             required)."
            .to_string(),
        libc::EMFILE | libc::ENFILE => format!(
            "io_uring_setup failed: out of file descriptors ({err}); raise `ulimit -n` or \
             close fds"
        ),
        _ => format!("io_uring_setup failed: {err}"),
    };
    io::Error::new(err.kind(), UnavailableError { errno, message })
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
        "io_uring_setup failed with ENOMEM: the ring's memory could not be locked. On kernels \
         before 5.12 rings count against RLIMIT_MEMLOCK (currently {memlock}). Fix: raise it \
         (`ulimit -l unlimited`, or LimitMEMLOCK= in systemd, or --ulimit memlock=-1 in \
         Docker), or use fewer/smaller rings (Builder::ring_entries)."
    )
}

fn proc_status_field(name: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim().to_string())
    })
}
