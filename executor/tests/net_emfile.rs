//! Out of file descriptors: `accept` must back off and keep the listener alive, then
//! serve the queued connection once fds are free.
//!
//! Lowering `RLIMIT_NOFILE` affects the whole process, so the test re-runs this binary
//! as a child process that does it alone.

use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::time::Duration;

const CHILD_ENV: &str = "URINGO_EMFILE_CHILD";
const TEST_NAME: &str = "accept_backs_off_on_emfile_and_recovers";

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
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
    let rt = uringo::Builder::new().worker_threads(1).build().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The client socket exists before fds run out; connecting needs no new fd.
    let client = socket2_like_socket();

    // Use up every fd.
    let mut fillers: Vec<OwnedFd> = Vec::new();
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    loop {
        match std::io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => fillers.push(fd),
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                break;
            }
        }
    }
    connect(&client, addr);

    let listener = rt.block_on(async { uringo::net::TcpListener::from_std(listener) });
    let accept = rt.spawn(async move {
        let res = listener.accept().await;
        res.map(|(stream, peer)| (stream.local_addr().unwrap(), peer))
    });
    // The connection is queued, but there is no fd to accept it into: accept must keep
    // backing off, not fail and not give up on the listener.
    std::thread::sleep(Duration::from_millis(300));
    assert!(!accept.is_finished(), "accept returned while out of fds");

    drop(fillers);
    let (server_local, peer) = rt
        .block_on(async { uringo::time::timeout(Duration::from_secs(10), accept).await })
        .expect("accept recovers once fds are free")
        .unwrap()
        .unwrap();
    assert_eq!(server_local, addr);
    assert_eq!(peer, local_addr(&client));
    println!("CHILD-CHECKED");
}

fn socket2_like_socket() -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: socket(2) returns a fresh fd or -1, checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: fresh fd, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn connect(fd: &OwnedFd, addr: std::net::SocketAddr) {
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("test binds IPv4")
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    use std::os::fd::AsRawFd;
    // SAFETY: `sin` is a valid sockaddr_in for the duration of the call.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

fn local_addr(fd: &OwnedFd) -> std::net::SocketAddr {
    let stream = std::net::TcpStream::from(
        fd.try_clone()
            .unwrap_or_else(|_| panic!("dup after fds were released")),
    );
    stream.local_addr().unwrap()
}
