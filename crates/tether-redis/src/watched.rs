//! A tracking connection's socket, watched: whether anything Redis sent is still
//! unread, for the near cache's pushed reads ([`tether_core::Quiet`]).
//!
//! The connection's reader (redis-rs's driver task) reads through [`Watched`]: it is
//! *busy* from the moment it asks for bytes until a read finds none waiting, by which
//! time everything read before has been decoded and applied (the driver hands each
//! push to the cache before it reads again). [`ReadState::quiet`] is then: not busy,
//! no byte waiting in the socket (`MSG_PEEK`), and still not busy since.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the reader of one tracking connection is doing.
#[derive(Debug)]
pub(crate) struct ReadState {
    /// Odd while the reader is busy (bytes asked for or not yet applied); each
    /// change bumps it, so a check can tell the reader was busy in between.
    turns: AtomicU64,
    /// The same socket, to peek at.
    socket: OwnedFd,
}

impl ReadState {
    /// Whether every byte Redis sent on this connection so far has been read and
    /// applied.
    pub(crate) fn quiet(&self) -> bool {
        let before = self.turns.load(SeqCst);
        if before & 1 == 1 {
            return false;
        }
        let mut byte = [MaybeUninit::<u8>::uninit()];
        // Non-blocking (tokio's socket): nothing waiting is `WouldBlock`; a byte
        // waiting, an end of stream (`Ok(0)`) or an error all mean "not quiet".
        let waiting = socket2::SockRef::from(&self.socket).peek(&mut byte);
        if !matches!(waiting, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock) {
            return false;
        }
        self.turns.load(SeqCst) == before
    }

    fn busy(&self) {
        if self.turns.load(SeqCst) & 1 == 0 {
            self.turns.fetch_add(1, SeqCst);
        }
    }

    fn idle(&self) {
        if self.turns.load(SeqCst) & 1 == 1 {
            self.turns.fetch_add(1, SeqCst);
        }
    }
}

/// A tracking connection's TCP stream, read through [`ReadState`].
#[derive(Debug)]
pub(crate) struct Watched {
    stream: TcpStream,
    state: Arc<ReadState>,
}

impl Watched {
    /// `stream`, and the state a [`Quiet`](tether_core::Quiet) check reads.
    pub(crate) fn new(stream: TcpStream) -> io::Result<(Self, Arc<ReadState>)> {
        let state = Arc::new(ReadState {
            turns: AtomicU64::new(0),
            socket: stream.as_fd().try_clone_to_owned()?,
        });
        Ok((
            Self {
                stream,
                state: state.clone(),
            },
            state,
        ))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.state.busy();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if read.is_pending() {
            // Nothing waiting, and the reader applied all it read before asking.
            this.state.idle();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Every tracking connection quiet.
#[derive(Debug)]
pub(crate) struct AllQuiet(pub(crate) Vec<Arc<ReadState>>);

impl tether_core::Quiet for AllQuiet {
    fn quiet(&self) -> bool {
        self.0.iter().all(|s| s.quiet())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn quiet_only_when_nothing_waits_and_nothing_is_half_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut watched, state) = Watched::new(client.unwrap()).unwrap();
        let (mut server, _) = server.unwrap();
        assert!(state.quiet(), "nothing sent yet");
        server.write_all(b"ab").await.unwrap();
        // Bytes in the socket, not read: not quiet (bounded wait for loopback).
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while state.quiet() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bytes never arrived"
            );
            tokio::task::yield_now().await;
        }
        let mut one = [0u8; 1];
        watched.read_exact(&mut one).await.unwrap();
        assert!(
            !state.quiet(),
            "read, but the reader has not come back for more"
        );
        watched.read_exact(&mut one).await.unwrap();
        // A read that finds nothing marks the reader idle.
        let mut more = [0u8; 1];
        let pending = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            watched.read(&mut more),
        )
        .await;
        assert!(pending.is_err(), "nothing more was sent");
        assert!(state.quiet());
    }
}
