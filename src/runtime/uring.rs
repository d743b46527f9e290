//! io_uring backend (in progress).
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::socket::EventFd;
use super::worker::Shard;

pub(crate) fn probe() -> Result<(), String> {
    Err("io_uring backend not built yet".into())
}

pub(crate) struct Driver;

impl Driver {
    pub(crate) fn new(_shard: &Shard, _waker: &Arc<EventFd>) -> io::Result<Self> {
        Err(io::Error::other("io_uring backend not built yet"))
    }
}

impl super::Driver for Driver {
    fn turn(&mut self, _shard: &mut Shard, _timeout: Duration) -> io::Result<()> {
        Ok(())
    }
}
