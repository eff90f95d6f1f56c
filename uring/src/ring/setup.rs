//! Ring construction: which setup flags this kernel accepts, and what it supports.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use io_uring::{opcode, types, IoUring, Probe};
use slab::Slab;

use super::builder::RingBuilder;
use super::features::{RingFeatures, TaskrunMode};
use super::inner::RingInner;
use crate::buf_ring::BufRings;
use crate::error::setup_failed;
use crate::shared::{self, RingShared};
use crate::sys::{self, EnterTarget};

/// One attempt at `io_uring_setup`.
struct Attempt {
    mode: TaskrunMode,
    taskrun_flag: bool,
    submit_all: bool,
    cqsize: bool,
}

/// Tries setup flag sets from best to most basic; EINVAL means "not this one".
pub(crate) fn create(builder: &RingBuilder) -> io::Result<(IoUring, TaskrunMode, bool, bool)> {
    let cq = builder.cq_size()?;
    let mut attempts = Vec::with_capacity(6);
    if builder.defer_taskrun {
        attempts.push(Attempt {
            mode: TaskrunMode::Defer,
            taskrun_flag: true,
            submit_all: true,
            cqsize: true,
        });
        attempts.push(Attempt {
            mode: TaskrunMode::Defer,
            taskrun_flag: false,
            submit_all: true,
            cqsize: true,
        });
    }
    attempts.push(Attempt {
        mode: TaskrunMode::Cooperative,
        taskrun_flag: true,
        submit_all: true,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: true,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: false,
        cqsize: true,
    });
    attempts.push(Attempt {
        mode: TaskrunMode::Plain,
        taskrun_flag: false,
        submit_all: false,
        cqsize: false,
    });

    let mut last_err = None;
    for attempt in attempts {
        let mut b = IoUring::builder();
        b.dontfork();
        if attempt.cqsize {
            b.setup_cqsize(cq);
        }
        if attempt.submit_all {
            b.setup_submit_all();
        }
        match attempt.mode {
            TaskrunMode::Defer => {
                b.setup_single_issuer();
                b.setup_defer_taskrun();
            }
            TaskrunMode::Cooperative => {
                b.setup_coop_taskrun();
            }
            TaskrunMode::Plain => {}
        }
        if attempt.taskrun_flag {
            b.setup_taskrun_flag();
        }
        match b.build(builder.sq_entries) {
            Ok(uring) => {
                return Ok((
                    uring,
                    attempt.mode,
                    attempt.taskrun_flag,
                    attempt.submit_all,
                ))
            }
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(mode = ?attempt.mode, taskrun_flag = attempt.taskrun_flag,
                    submit_all = attempt.submit_all, "io_uring setup flags refused, trying fewer");
                last_err = Some(err);
            }
            Err(err) => return Err(setup_failed(err)),
        }
    }
    Err(setup_failed(last_err.unwrap_or_else(|| {
        io::Error::from_raw_os_error(libc::EINVAL)
    })))
}

impl RingInner {
    /// Sets up a ring on the calling thread, which becomes its owner.
    pub(super) fn new(builder: &RingBuilder) -> io::Result<Rc<RingInner>> {
        static NEXT_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

        let (uring, taskrun, taskrun_flag, submit_all) = create(builder)?;
        let mut probe = Probe::new();
        uring.submitter().register_probe(&mut probe)?;
        let ring_fd = uring.as_raw_fd();
        let registered_index = if builder.register_ring_fd {
            match sys::register_ring_fd(ring_fd) {
                Ok(index) => Some(index),
                Err(err) => {
                    tracing::debug!(%err, "cannot register the ring fd; entering by fd");
                    None
                }
            }
        } else {
            None
        };
        let params = uring.params();
        let features = RingFeatures {
            taskrun,
            taskrun_flag,
            submit_all,
            registered_ring_fd: registered_index.is_some(),
            ext_arg: params.is_feature_ext_arg(),
            nodrop: params.is_feature_nodrop(),
            skip_cqe_on_success: params.is_feature_skip_cqe_on_success(),
            msg_ring: probe.is_supported(opcode::MsgRingData::CODE),
            sq_entries: params.sq_entries(),
            cq_entries: params.cq_entries(),
        };
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let shared = RingShared::new(id, ring_fd)?;
        tracing::debug!(ring = id, %features, "io_uring ring created");

        let inner = Rc::new(RingInner {
            uring: RefCell::new(uring),
            slots: RefCell::new(Slab::with_capacity(features.sq_entries as usize)),
            backlog: RefCell::new(VecDeque::new()),
            buf_rings: RefCell::new(BufRings::default()),
            shared,
            enter_target: match registered_index {
                Some(index) => EnterTarget::Registered(index),
                None => EnterTarget::Fd(ring_fd),
            },
            registered_index,
            features,
            probe,
            eventfd_buf: Box::into_raw(Box::new(0u64)),
            eventfd_armed: Cell::new(false),
            park_timespec: Box::new(std::cell::UnsafeCell::new(types::Timespec::new())),
            msg_ring_wakeups: builder.msg_ring_wakeups,
            drop_timeout: builder.drop_timeout,
        });
        shared::register(&inner.shared);
        inner.arm_eventfd()?;
        Ok(inner)
    }
}
