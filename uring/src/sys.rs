//! The raw syscalls the `io-uring` crate does not expose in the form we need: `enter`
//! with a registered ring index (its `Submitter` forgets the registration between
//! calls) and the EXT_ARG wait argument, the probe for registered wait regions, a
//! buffer ring's head, marking a recv SQE a bundle, and `uname` for naming the kernel in
//! errors.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

/// `struct io_sqring_offsets`: where the SQ ring's words are in its mapping.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct SqRingOffsets {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) ring_mask: u32,
    pub(crate) ring_entries: u32,
    pub(crate) flags: u32,
    pub(crate) dropped: u32,
    pub(crate) array: u32,
    pub(crate) resv1: u32,
    pub(crate) user_addr: u64,
}

/// `struct io_uring_params` as the kernel filled it in at setup.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RingParams {
    pub(crate) sq_entries: u32,
    pub(crate) cq_entries: u32,
    pub(crate) flags: u32,
    pub(crate) sq_thread_cpu: u32,
    pub(crate) sq_thread_idle: u32,
    pub(crate) features: u32,
    pub(crate) wq_fd: u32,
    pub(crate) resv: [u32; 3],
    pub(crate) sq_off: SqRingOffsets,
    pub(crate) cq_off: CqRingOffsets,
}

/// `struct io_cqring_offsets`: where the CQ ring's words and entries are in its mapping.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct CqRingOffsets {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) ring_mask: u32,
    pub(crate) ring_entries: u32,
    pub(crate) overflow: u32,
    pub(crate) cqes: u32,
    pub(crate) flags: u32,
    pub(crate) resv1: u32,
    pub(crate) user_addr: u64,
}

/// The kernel's `io_uring_params` behind the crate's `Parameters`.
pub(crate) fn ring_params(params: &io_uring::Parameters) -> &RingParams {
    const _: () = assert!(std::mem::size_of::<RingParams>() == 120);
    const _: () = assert!(std::mem::size_of::<io_uring::Parameters>() == 120);
    // `Parameters` is documented as a `repr(transparent)` wrapper of the kernel's
    // `io_uring_params`, which `RingParams` lays out field for field (the sizes are
    // checked above, the values by the test below).
    // SAFETY: so a `&Parameters` is a valid `&RingParams`.
    unsafe { &*(params as *const io_uring::Parameters).cast::<RingParams>() }
}

/// `IORING_OFF_SQ_RING`: the mmap offset of the SQ ring.
pub(crate) const OFF_SQ_RING: libc::off_t = 0;
/// `IORING_OFF_CQ_RING`: the mmap offset of the CQ ring.
pub(crate) const OFF_CQ_RING: libc::off_t = 0x800_0000;
/// `IORING_OFF_SQES`: the mmap offset of the SQE array.
pub(crate) const OFF_SQES: libc::off_t = 0x1000_0000;

/// One `mmap` of the ring's fd, unmapped on drop.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    pub(crate) fn new(fd: i32, len: usize, offset: libc::off_t) -> io::Result<Mapping> {
        // Nothing of ours is at the address the kernel picks.
        // SAFETY: a fresh shared mapping of the ring's fd.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }

    /// The address `offset` bytes in.
    pub(crate) fn at<T>(&self, offset: u32) -> NonNull<T> {
        assert!(offset as usize + std::mem::size_of::<T>() <= self.len);
        // SAFETY: in bounds, as just checked.
        unsafe { self.ptr.add(offset as usize).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Whatever points into it is dropped with it (its owner holds it that long).
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

pub(crate) const ENTER_GETEVENTS: u32 = 1 << 0;
pub(crate) const ENTER_EXT_ARG: u32 = 1 << 3;
pub(crate) const ENTER_REGISTERED_RING: u32 = 1 << 4;

const REGISTER_RING_FDS: libc::c_uint = 20;
const UNREGISTER_RING_FDS: libc::c_uint = 21;
const REGISTER_MEM_REGION: libc::c_uint = 34;
/// `IORING_REGISTER_PBUF_STATUS` (6.8): a buffer ring's head as the kernel sees it.
const REGISTER_PBUF_STATUS: libc::c_uint = 26;

/// `struct __kernel_timespec`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KernelTimespec {
    pub(crate) tv_sec: i64,
    pub(crate) tv_nsec: i64,
}

impl From<std::time::Duration> for KernelTimespec {
    fn from(d: std::time::Duration) -> Self {
        Self {
            tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct GeteventsArg {
    pub(crate) sigmask: u64,
    pub(crate) sigmask_sz: u32,
    pub(crate) min_wait_usec: u32,
    pub(crate) ts: u64,
}

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// Where `io_uring_enter` finds the ring: its fd, or its index among the thread's
/// registered rings (saves an fd table lookup per enter).
#[derive(Debug, Clone, Copy)]
pub(crate) enum EnterTarget {
    Fd(RawFd),
    Registered(u32),
}

/// `io_uring_enter(2)`. `arg` is null or points at a [`GeteventsArg`] (with EXT_ARG).
///
/// # Safety
/// `arg` must be null or valid for the duration of the call, matching `flags`.
pub(crate) unsafe fn enter(
    target: EnterTarget,
    to_submit: u32,
    min_complete: u32,
    mut flags: u32,
    arg: Option<&GeteventsArg>,
) -> io::Result<u32> {
    let fd = match target {
        EnterTarget::Fd(fd) => fd,
        EnterTarget::Registered(index) => {
            flags |= ENTER_REGISTERED_RING;
            index as RawFd
        }
    };
    let (arg_ptr, arg_size) = match arg {
        Some(arg) => (
            arg as *const GeteventsArg as *const libc::c_void,
            std::mem::size_of::<GeteventsArg>(),
        ),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: plain syscall; the caller guarantees `arg` is valid for its duration.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            to_submit,
            min_complete,
            flags,
            arg_ptr,
            arg_size,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as u32)
    }
}

/// Registers `ring_fd` in the calling thread's ring table; returns its index.
pub(crate) fn register_ring_fd(ring_fd: RawFd) -> io::Result<u32> {
    let mut update = RsrcUpdate {
        offset: u32::MAX,
        resv: 0,
        data: ring_fd as u64,
    };
    // SAFETY: `update` is a valid io_uring_rsrc_update for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            REGISTER_RING_FDS,
            &mut update as *mut RsrcUpdate,
            1,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(update.offset)
}

/// Drops the thread's registration of a ring (it holds a reference to the ring file,
/// which would otherwise keep the ring alive until the thread exits).
pub(crate) fn unregister_ring_fd(ring_fd: RawFd, index: u32) -> io::Result<()> {
    let update = RsrcUpdate {
        offset: index,
        resv: 0,
        data: 0,
    };
    // SAFETY: `update` is a valid io_uring_rsrc_update for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            UNREGISTER_RING_FDS,
            &update as *const RsrcUpdate,
            1,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `struct io_uring_mem_region_reg`.
#[repr(C)]
#[derive(Default)]
struct MemRegionReg {
    region_uptr: u64,
    flags: u64,
    resv: [u64; 2],
}

/// Whether the kernel knows `IORING_REGISTER_MEM_REGION` (6.13), which registered wait
/// arguments need. Asks it to register a region whose description is at address 0: a
/// kernel that knows the opcode fails copying the description in (EFAULT) and registers
/// nothing; one that does not refuses the opcode (EINVAL).
pub(crate) fn knows_registered_wait(ring_fd: RawFd) -> bool {
    let reg = MemRegionReg::default();
    // The null region pointer inside `reg` is only ever read by the kernel, which
    // reports it.
    // SAFETY: `reg` is a valid io_uring_mem_region_reg for the duration of the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            REGISTER_MEM_REGION,
            &reg as *const MemRegionReg,
            1,
        )
    };
    ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// `struct io_uring_buf_status`.
#[repr(C)]
#[derive(Default)]
struct BufStatus {
    buf_group: u32,
    head: u32,
    resv: [u32; 8],
}

/// The head of buffer group `group`'s ring on io_uring `ring_fd`: the next entry the
/// kernel takes (`IORING_REGISTER_PBUF_STATUS`, 6.8; every kernel with incremental
/// buffers has it).
pub(crate) fn buf_ring_head(ring_fd: RawFd, group: u16) -> io::Result<u16> {
    let mut status = BufStatus {
        buf_group: u32::from(group),
        ..BufStatus::default()
    };
    // The kernel reads and writes the one `io_uring_buf_status` we pass.
    // SAFETY: it lives across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            REGISTER_PBUF_STATUS,
            &mut status as *mut BufStatus,
            1,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // The kernel keeps the head in 16 bits.
    Ok(status.head as u16)
}

/// The running kernel's release (`uname -r`), for error messages.
pub(crate) fn kernel_release() -> String {
    // SAFETY: `utsname` is plain old data; all zeroes is a valid value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes into the struct we pass.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown".to_string();
    }
    // SAFETY: uname NUL-terminates `release` within the array.
    unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `IORING_RECVSEND_BUNDLE`, a flag of a recv SQE's `ioprio`.
const IORING_RECVSEND_BUNDLE: u16 = 1 << 4;

/// Makes a buffer-selecting recv SQE a bundle recv (one CQE may carry several buffers).
/// The ring decides this only once it has bound the op to its buffer ring, after the
/// submitter built the SQE, and the `io-uring` crate has no setter for `ioprio`.
pub(crate) fn mark_recv_bundle(sqe: &mut io_uring::squeue::Entry) {
    // `squeue::Entry` is `#[repr(C)]` around the kernel's `io_uring_sqe`, whose ABI puts
    // `ioprio`, a u16, at byte 2 (after `opcode` and `flags`, one byte each); the test
    // below checks this against the crate's own bundle opcodes.
    const IOPRIO: usize = 2;
    let base = (sqe as *mut io_uring::squeue::Entry).cast::<u8>();
    // Unaligned access makes no claim about the field's alignment.
    // SAFETY: the entry is 64 bytes, so bytes 2..4 are inside it, and it is ours (`&mut`).
    unsafe {
        let ioprio = base.add(IOPRIO).cast::<u16>();
        ioprio.write_unaligned(ioprio.read_unaligned() | IORING_RECVSEND_BUNDLE);
    }
}

/// Sets an SQE's `user_data` in place (the `io-uring` crate's setter takes the entry by
/// value, which copies all 64 bytes of it).
#[inline]
pub(crate) fn set_user_data(sqe: &mut io_uring::squeue::Entry, user_data: u64) {
    // `io_uring_sqe` puts `user_data`, a u64, at byte 32 (after opcode, flags, ioprio,
    // fd, off, addr, len and the op flags); the test below checks it against the crate.
    const USER_DATA: usize = 32;
    let base = (sqe as *mut io_uring::squeue::Entry).cast::<u8>();
    // Unaligned access makes no claim about the field's alignment.
    // SAFETY: the entry is 64 bytes, so bytes 32..40 are inside it, and it is ours (`&mut`).
    unsafe { base.add(USER_DATA).cast::<u64>().write_unaligned(user_data) };
}

#[cfg(all(test, not(loom)))]
mod tests {
    #[test]
    fn ring_params_read_what_the_crate_reads() {
        let uring: io_uring::IoUring = io_uring::IoUring::builder()
            .setup_cqsize(64)
            .build(16)
            .unwrap();
        let params = super::ring_params(uring.params());
        assert_eq!(params.sq_entries, uring.params().sq_entries());
        assert_eq!(params.cq_entries, uring.params().cq_entries());
        assert_eq!(params.cq_entries, 64);
        assert_eq!(
            params.features & 1,
            u32::from(uring.params().is_feature_single_mmap())
        );
        // The kernel lays the SQ ring's words out in this order.
        let off = &params.sq_off;
        assert!(off.head < off.tail && off.tail < off.ring_mask && off.ring_mask < off.array);
        let off = &params.cq_off;
        assert!(off.head < off.tail && off.tail < off.ring_mask && off.ring_mask < off.cqes);
    }

    use io_uring::squeue::{Entry, Flags};
    use io_uring::{opcode, types::Fd};

    fn bytes(sqe: &Entry) -> [u8; 64] {
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        // `Entry` is a `#[repr(C)]` struct of plain integers, 64 bytes (checked above).
        // SAFETY: so every byte is initialized and readable.
        unsafe { std::ptr::read((sqe as *const Entry).cast::<[u8; 64]>()) }
    }

    #[test]
    fn user_data_set_in_place_matches_the_crates_setter() {
        let sqe = opcode::Recv::new(Fd(3), std::ptr::null_mut(), 9).build();
        let mut in_place = sqe.clone();
        super::set_user_data(&mut in_place, 0x0123_4567_89ab_cdef);
        let want = sqe.user_data(0x0123_4567_89ab_cdef);
        assert_eq!(bytes(&in_place), bytes(&want));
        assert_eq!(in_place.get_user_data(), 0x0123_4567_89ab_cdef);
    }

    #[test]
    fn marking_a_recv_as_a_bundle_matches_the_bundle_opcodes() {
        let mut sqe = opcode::RecvMulti::new(Fd(3), 7).build().user_data(9);
        super::mark_recv_bundle(&mut sqe);
        let want = opcode::RecvMultiBundle::new(Fd(3), 7).build().user_data(9);
        assert_eq!(bytes(&sqe), bytes(&want));

        let mut sqe = opcode::Recv::new(Fd(3), std::ptr::null_mut(), 0)
            .buf_group(7)
            .build()
            .flags(Flags::BUFFER_SELECT);
        super::mark_recv_bundle(&mut sqe);
        let want = opcode::RecvBundle::new(Fd(3), 7).build();
        assert_eq!(bytes(&sqe), bytes(&want));
    }
}
