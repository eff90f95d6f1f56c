//! The ring-level fast path of a forward: received chunks are sent on from the CQEs
//! themselves, with no task involved.
//!
//! A [`Relay`] is a multishot receive on the source and, at most one at a time, sends
//! to the destination, all of them handled ops (`uringo_uring::op::Handled`): the
//! receive's CQE submits the send of its buffer, the send's CQE gives the buffer back
//! and submits the next chunk's send. That is how a hand-written io_uring proxy moves a
//! request/response flow, and it costs no task wake or poll per CQE.
//!
//! The relay covers only the steady state of an interactive flow. Anything else stops
//! it and hands the flow back to the forward's task (`forward.rs`), which has the
//! machinery for it:
//!
//! - the destination is full (`EAGAIN`): the rest of the chunk, and every chunk behind
//!   it, go to the task, which copies them out of the pool ([`Stop::Full`]);
//! - a chunk fills a whole pool buffer, a bulk flow ([`Stop::Bulk`]), or the bytes held
//!   reach the limit ([`Stop::Limit`]): the task receives into vectors of its own;
//! - the multishot ended without end of stream, for want of pool buffers, say
//!   ([`Stop::Ended`]): the task's own receive waits for buffers;
//! - an error on either socket ([`Stop::Failed`]).
//!
//! End of stream does not stop the relay: it sends what it holds, then hands over.
//!
//! The relay runs on the ring it was started on, whichever worker polls the task later:
//! every CQE of its ops is dispatched there. Its state is a mutex the ring takes once
//! per CQE and the task only when it is woken, which in the steady state is never. The
//! task is woken when the relay stops (so that it cancels the receive) and when the
//! relay is quiescent: the receive has ended and no send is in flight, so no CQE will
//! touch the state again and the task may take everything in it.
//!
//! Every pool buffer is held by exactly one party: the state's queue, the send in
//! flight (its op's data, given back at its CQE), or, after the handover, the task. A
//! forward dropped mid-flow marks the state abandoned: the relay then drops whatever
//! arrives and sends nothing more.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types};
use uringo_uring::op::{submit_handled, Cqe, Dispatch, Handled, HandledRef};
use uringo_uring::{BufPool, BufSelect, PooledBuf};

use crate::net::socket::{self, SharedFd};

/// Why a relay handed its flow back.
#[derive(Debug)]
pub(super) enum Stop {
    /// The destination had no room: the handover's `rest` waits for it.
    Full,
    /// A chunk filled a whole pool buffer.
    Bulk,
    /// The bytes held reached the limit.
    Limit,
    /// The multishot receive ended without end of stream or an error (`ENOBUFS`, or
    /// the kernel ending it): the task's own receive takes over.
    Ended,
    /// An error on either socket.
    Failed(io::Error),
}

/// What a quiescent relay gives back to the task.
pub(super) struct Handover {
    /// Why it stopped; `None` when the source ended and everything was sent.
    pub(super) stop: Option<Stop>,
    /// The source's stream ended.
    pub(super) eof: bool,
    /// The unsent part of the chunk the destination refused: the chunk and where the
    /// unsent part starts.
    pub(super) rest: Option<(PooledBuf, usize)>,
    /// Chunks received and not sent, oldest first.
    pub(super) queue: VecDeque<PooledBuf>,
    /// Bytes the relay sent.
    pub(super) sent: u64,
    /// Chunks the relay received.
    pub(super) chunks: u64,
}

/// The task's side of a running relay.
pub(super) struct Relay {
    shared: Arc<Shared>,
    recv: HandledRef,
    /// The receive was cancelled (the relay stopped, or is being dropped).
    cancelled: bool,
    /// The handover was taken: no op of the relay is in flight any more.
    done: bool,
}

/// What the relay's ops and its task share.
struct Shared {
    /// Held until the last op of the relay completes, so no SQE names a closed fd.
    _sockets: [SharedFd; 2],
    /// Their fds, read once: each SQE names one, and asking the `dyn` socket for it was
    /// a cache miss per op.
    src: RawFd,
    dst: RawFd,
    limit: usize,
    buf_size: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Chunks received and not yet sent, oldest first; none of them is in flight.
    queue: VecDeque<PooledBuf>,
    /// See [`Handover::rest`].
    rest: Option<(PooledBuf, usize)>,
    /// A send is in flight.
    sending: bool,
    /// Bytes received and not yet sent, in flight or not.
    held: usize,
    sent: u64,
    chunks: u64,
    /// The receive's final CQE has come.
    recv_done: bool,
    eof: bool,
    stop: Option<Stop>,
    /// The task dropped the relay: whatever arrives is dropped, nothing more is sent.
    abandoned: bool,
    waker: Option<Waker>,
}

impl State {
    /// Sends go on while the relay runs (end of stream included).
    fn may_send(&self) -> bool {
        self.stop.is_none() && !self.abandoned
    }

    /// No CQE will touch the state again, and nothing more will be sent.
    fn quiescent(&self) -> bool {
        self.recv_done && !self.sending && (self.stop.is_some() || self.queue.is_empty())
    }

    fn stop(&mut self, why: Stop) {
        if self.stop.is_none() {
            self.stop = Some(why);
        }
    }

    /// The waker to wake once the lock is released, if the task has something to do.
    fn waker_to_wake(&mut self) -> Option<Waker> {
        if self.stop.is_some() || self.quiescent() {
            self.waker.take()
        } else {
            None
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `chunk` (from `offset` on) in flight; `state.sending` is clear.
    fn send(
        self: &Arc<Self>,
        ring: &Dispatch<'_>,
        state: &mut State,
        chunk: PooledBuf,
        offset: usize,
    ) {
        let op = SendChunk {
            shared: self.clone(),
            chunk: Some(chunk),
            offset,
        };
        match ring.submit(op) {
            Ok(()) => state.sending = true,
            Err((mut op, err)) => {
                if let Some(chunk) = op.chunk.take() {
                    state.rest = Some((chunk, offset));
                }
                state.stop(Stop::Failed(err));
            }
        }
    }
}

impl Relay {
    /// Starts relaying `src` to `dst` on the ring this thread owns, receiving into
    /// `pool` and holding at most about `limit` bytes. `None` where no relay can run:
    /// on a thread that does not own a ring, or with a pool in single-shot mode.
    pub(super) fn start(
        src: &SharedFd,
        dst: &SharedFd,
        pool: &BufPool,
        limit: usize,
    ) -> Option<Relay> {
        if pool.is_fallback() {
            return None;
        }
        let shared = Arc::new(Shared {
            _sockets: [src.clone(), dst.clone()],
            src: src.as_raw_fd(),
            dst: dst.as_raw_fd(),
            limit,
            buf_size: pool.buf_size(),
            state: Mutex::new(State::default()),
        });
        let recv = RecvChunks {
            shared: shared.clone(),
            select: BufSelect::new(pool),
        };
        let recv = submit_handled(recv).ok()?;
        Some(Relay {
            shared,
            recv,
            cancelled: false,
            done: false,
        })
    }

    /// Bytes received and not yet sent.
    pub(super) fn held(&self) -> usize {
        self.shared.lock().held
    }

    /// Ready with everything the relay holds once it has stopped and gone quiescent.
    pub(super) fn poll_handover(&mut self, cx: &mut Context<'_>) -> Poll<Handover> {
        let mut state = self.shared.lock();
        if state.quiescent() {
            self.done = true;
            return Poll::Ready(Handover {
                stop: state.stop.take(),
                eof: state.eof,
                rest: state.rest.take(),
                queue: std::mem::take(&mut state.queue),
                sent: state.sent,
                chunks: state.chunks,
            });
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        let cancel = state.stop.is_some() && !self.cancelled;
        drop(state);
        if cancel {
            self.cancelled = true;
            self.recv.cancel();
        }
        // A dump shows the task waiting on the relay's receive.
        self.recv.report_pending();
        Poll::Pending
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock();
        state.abandoned = true;
        let waker = state.waker.take();
        let queue = std::mem::take(&mut state.queue);
        let rest = state.rest.take();
        let recv_done = state.recv_done;
        drop(state);
        drop((queue, rest, waker));
        if !recv_done && !self.cancelled {
            self.recv.cancel();
        }
    }
}

/// The relay's multishot receive.
struct RecvChunks {
    shared: Arc<Shared>,
    select: BufSelect,
}

// SAFETY: the SQE carries no pointers; the kernel writes into pool buffers that the
// ring's registration keeps alive until after the op's final CQE, and the source socket
// is held (`Shared::_sockets`) until then.
unsafe impl Handled for RecvChunks {
    fn build(&mut self) -> squeue::Entry {
        let fd = types::Fd(self.shared.src);
        opcode::RecvMulti::new(fd, self.select.group()).build()
    }

    fn on_cqe(&mut self, ring: &Dispatch<'_>, cqe: Cqe, buf_start: u32, last: bool) {
        let chunk = self.select.take(&cqe, buf_start);
        let shared = &self.shared;
        let mut state = shared.lock();
        state.recv_done |= last;
        match cqe.result {
            1.. => match chunk {
                Some(chunk) if !state.abandoned => {
                    state.chunks += 1;
                    let len = chunk.len();
                    state.held += len;
                    if state.may_send() && !state.sending && state.queue.is_empty() {
                        shared.send(ring, &mut state, chunk, 0);
                    } else {
                        state.queue.push_back(chunk);
                    }
                    if len == shared.buf_size {
                        state.stop(Stop::Bulk);
                    } else if state.held >= shared.limit {
                        state.stop(Stop::Limit);
                    } else if last {
                        state.stop(Stop::Ended);
                    }
                }
                Some(_) => {}
                None => state.stop(Stop::Failed(io::Error::other(
                    "multishot recv completed with data but without a provided buffer",
                ))),
            },
            0 => state.eof = true,
            res if res == -libc::ENOBUFS => state.stop(Stop::Ended),
            res => state.stop(Stop::Failed(io::Error::from_raw_os_error(-res))),
        }
        let waker = state.waker_to_wake();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn buf_select(&self) -> Option<&BufSelect> {
        Some(&self.select)
    }
}

/// One send of the relay: `chunk[offset..]` to the destination, with `MSG_DONTWAIT`
/// (see `net::socket::writable` for why no send may wait in the kernel).
struct SendChunk {
    shared: Arc<Shared>,
    /// Taken back at the CQE.
    chunk: Option<PooledBuf>,
    offset: usize,
}

// SAFETY: the SQE points into `chunk`, a pool buffer the op holds until its CQE (only
// `on_cqe` takes it out); the destination socket is held (`Shared::_sockets`) until then.
unsafe impl Handled for SendChunk {
    fn build(&mut self) -> squeue::Entry {
        let chunk = self
            .chunk
            .as_ref()
            .expect("a send's chunk is held until its CQE");
        let bytes = &chunk[self.offset..];
        let fd = types::Fd(self.shared.dst);
        opcode::Send::new(fd, bytes.as_ptr(), bytes.len() as u32)
            .flags(socket::NO_WAIT)
            .build()
    }

    fn on_cqe(&mut self, ring: &Dispatch<'_>, cqe: Cqe, _buf_start: u32, _last: bool) {
        let chunk = self.chunk.take().expect("a send completes once");
        let shared = &self.shared;
        let mut state = shared.lock();
        state.sending = false;
        match cqe.result {
            0.. => {
                let n = cqe.result as usize;
                state.sent += n as u64;
                state.held -= n;
                let at = self.offset + n;
                if at < chunk.len() {
                    if state.abandoned {
                        // Dropped with the chunk below.
                    } else if n == 0 {
                        state.rest = Some((chunk, at));
                        state.stop(Stop::Failed(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the destination took no bytes of a send",
                        )));
                    } else if state.may_send() {
                        // A short send: the rest goes at once (`net::socket::writable`).
                        shared.send(ring, &mut state, chunk, at);
                    } else {
                        state.rest = Some((chunk, at));
                    }
                } else {
                    drop(chunk);
                    if state.may_send() {
                        if let Some(next) = state.queue.pop_front() {
                            shared.send(ring, &mut state, next, 0);
                        }
                    }
                }
            }
            res if res == -libc::EAGAIN => {
                if !state.abandoned {
                    state.rest = Some((chunk, self.offset));
                }
                state.stop(Stop::Full);
            }
            res => state.stop(Stop::Failed(io::Error::from_raw_os_error(-res))),
        }
        let waker = state.waker_to_wake();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}
