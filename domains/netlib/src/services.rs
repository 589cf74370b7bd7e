//! The services: TCP and UDP echo on [`ECHO_PORT`], the HTTP status page on [`HTTP_PORT`].
//!
//! [`Services::step`] does whatever can be done now without blocking and returns; the
//! services domain calls it in a loop with `Sockets::wait` in between.
//!
//! Any `Sockets` call failing with an `RpcError` means the stack crashed (its recovery
//! proxy restarts it): the services forget every socket id and open their sockets again
//! on the next step. A listener or UDP socket the stack no longer knows
//! (`NoSuchSocket`) means the same thing: the stack was restarted between two calls.

use crate::http::{self, Parsed, Route, Status, StatusView};
use alloc::vec::Vec;
use frond_interface::net::{
    DomainRow, DomainTable, NetError, ServiceStats, SockBuf, SockId, Sockets, StackStats, System, ECHO_PORT, HTTP_PORT,
    SOCK_BUF, TABLE_ROWS,
};
use frond_interface::{RRef, RpcError};

/// Concurrent connections per TCP service; more wait in the stack's backlog.
pub const MAX_ECHO_CONNS: usize = 16;
pub const MAX_HTTP_CONNS: usize = 16;
/// Backlogs of the listeners: connections a burst may open before the services accept.
pub const ECHO_BACKLOG: u8 = 8;
pub const HTTP_BACKLOG: u8 = 4;
/// An HTTP connection that has not finished its exchange by then is closed.
pub const HTTP_TIMEOUT_NS: u64 = 10_000_000_000;
/// Work per step: receive/send rounds per connection, datagrams per step.
const ROUNDS: usize = 8;
const UDP_PER_STEP: usize = 32;

/// Why a step stopped early.
enum Fault {
    /// A `Sockets` call failed: the stack crashed.
    Rpc(RpcError),
    /// The stack no longer knows one of our sockets: it was restarted.
    Gone,
    /// No shared-heap memory for a buffer: try again next step.
    NoMemory,
}

/// What a step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Data moved or connections came or went: another step may find more to do.
    pub busy: bool,
    /// The sockets were (re)opened in this step.
    pub opened: bool,
    /// Opening failed with this error (retried next step).
    pub open_error: Option<NetError>,
    /// The stack was found crashed in this step.
    pub stack_lost: Option<RpcError>,
}

struct EchoConn {
    id: SockId,
    /// Received bytes not sent back yet.
    pending: Vec<u8>,
    peer_closed: bool,
}

enum HttpPhase {
    Reading(Vec<u8>),
    Sending { resp: Vec<u8>, off: usize },
    Draining,
}

struct HttpConn {
    id: SockId,
    since_ns: u64,
    phase: HttpPhase,
}

/// What happened to a connection in a step.
enum Next {
    Keep,
    /// Closed (or gone): forget it.
    Done,
}

/// The shared-heap buffer that goes back and forth with the stack.
struct Io<'a> {
    s: &'a dyn Sockets,
    buf: Option<RRef<SockBuf>>,
}

impl Io<'_> {
    fn take(&mut self) -> Result<RRef<SockBuf>, Fault> {
        match self.buf.take() {
            Some(b) => Ok(b),
            None => RRef::try_new(SockBuf::empty()).map_err(|_| Fault::NoMemory),
        }
    }

    fn recv(&mut self, id: SockId) -> Result<Result<u32, NetError>, Fault> {
        let b = self.take()?;
        let (b, r) = self.s.recv(id, b).map_err(Fault::Rpc)?;
        self.buf = Some(b);
        Ok(r)
    }

    /// The bytes the last `recv` got.
    fn data(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], |b| b.bytes())
    }

    /// Sends the buffer as it is (after a `recv`: back to where it came from).
    fn send_back(&mut self, id: SockId) -> Result<Result<u32, NetError>, Fault> {
        let b = self.take()?;
        let (b, r) = self.s.send(id, b).map_err(Fault::Rpc)?;
        self.buf = Some(b);
        Ok(r)
    }

    /// Sends the first [`SOCK_BUF`] bytes of `bytes`.
    fn send(&mut self, id: SockId, bytes: &[u8]) -> Result<Result<u32, NetError>, Fault> {
        let mut b = self.take()?;
        let n = bytes.len().min(SOCK_BUF);
        b.data[..n].copy_from_slice(&bytes[..n]);
        b.len = n as u32;
        self.buf = Some(b);
        self.send_back(id)
    }
}

fn rpc<T>(r: Result<T, RpcError>) -> Result<T, Fault> {
    r.map_err(Fault::Rpc)
}

/// Echo and HTTP over a `Sockets`.
pub struct Services {
    tcp_echo: Option<SockId>,
    udp_echo: Option<SockId>,
    http: Option<SockId>,
    echo: Vec<EchoConn>,
    web: Vec<HttpConn>,
    stats: ServiceStats,
    /// The stack failed and no step has reopened the sockets since: a further failure is
    /// the same outage, not counted again.
    lost: bool,
    buf: Option<RRef<SockBuf>>,
    table: Option<RRef<DomainTable>>,
}

impl Default for Services {
    fn default() -> Self {
        Self::new()
    }
}

impl Services {
    pub fn new() -> Self {
        Self {
            tcp_echo: None,
            udp_echo: None,
            http: None,
            echo: Vec::new(),
            web: Vec::new(),
            stats: ServiceStats::default(),
            lost: false,
            buf: None,
            table: None,
        }
    }

    pub fn stats(&self) -> ServiceStats {
        self.stats
    }

    /// All three sockets are open.
    pub fn is_open(&self) -> bool {
        self.tcp_echo.is_some() && self.udp_echo.is_some() && self.http.is_some()
    }

    /// Open connections (echo, HTTP).
    pub fn connections(&self) -> (usize, usize) {
        (self.echo.len(), self.web.len())
    }

    /// Does what can be done now: (re)opens the sockets, accepts, echoes, serves.
    pub fn step(&mut self, sockets: &dyn Sockets, system: &dyn System, now_ns: u64) -> Step {
        let mut st = Step::default();
        let mut io = Io { s: sockets, buf: self.buf.take() };
        let r = self.step_inner(&mut io, system, now_ns, &mut st);
        self.buf = io.buf;
        match r {
            Ok(()) => {}
            Err(Fault::NoMemory) => {}
            Err(Fault::Rpc(e)) => {
                st.stack_lost = Some(e);
                self.lose_stack();
            }
            Err(Fault::Gone) => {
                st.stack_lost = Some(RpcError::DomainDead);
                self.lose_stack();
            }
        }
        st
    }

    /// The stack went away with our sockets: forget them all.
    fn lose_stack(&mut self) {
        if !self.lost {
            self.stats.stack_restarts_seen += 1;
            self.lost = true;
        }
        self.tcp_echo = None;
        self.udp_echo = None;
        self.http = None;
        self.echo.clear();
        self.web.clear();
    }

    fn open(&mut self, io: &mut Io<'_>, st: &mut Step) -> Result<bool, Fault> {
        if self.is_open() {
            return Ok(true);
        }
        if self.tcp_echo.is_none() {
            match rpc(io.s.tcp_listen(ECHO_PORT, ECHO_BACKLOG))? {
                Ok(id) => self.tcp_echo = Some(id),
                Err(e) => st.open_error = Some(e),
            }
        }
        if self.udp_echo.is_none() {
            match rpc(io.s.udp_bind(ECHO_PORT))? {
                Ok(id) => self.udp_echo = Some(id),
                Err(e) => st.open_error = Some(e),
            }
        }
        if self.http.is_none() {
            match rpc(io.s.tcp_listen(HTTP_PORT, HTTP_BACKLOG))? {
                Ok(id) => self.http = Some(id),
                Err(e) => st.open_error = Some(e),
            }
        }
        if self.is_open() {
            st.opened = true;
            st.busy = true;
            self.lost = false;
        }
        Ok(self.is_open())
    }

    fn step_inner(&mut self, io: &mut Io<'_>, system: &dyn System, now_ns: u64, st: &mut Step) -> Result<(), Fault> {
        if !self.open(io, st)? {
            return Ok(());
        }
        self.udp(io, st)?;
        self.accept(io, st)?;
        let mut i = 0;
        while i < self.echo.len() {
            match echo_conn(&mut self.echo[i], io, &mut self.stats, st)? {
                Next::Keep => i += 1,
                Next::Done => {
                    self.echo.swap_remove(i);
                    st.busy = true;
                }
            }
        }
        let mut i = 0;
        while i < self.web.len() {
            let mut conn = core::mem::replace(
                &mut self.web[i],
                HttpConn { id: SockId(0), since_ns: 0, phase: HttpPhase::Draining },
            );
            let next = self.http_conn(&mut conn, io, system, now_ns, st);
            self.web[i] = conn;
            match next? {
                Next::Keep => i += 1,
                Next::Done => {
                    self.web.swap_remove(i);
                    st.busy = true;
                }
            }
        }
        Ok(())
    }

    fn udp(&mut self, io: &mut Io<'_>, st: &mut Step) -> Result<(), Fault> {
        let Some(id) = self.udp_echo else { return Ok(()) };
        for _ in 0..UDP_PER_STEP {
            match io.recv(id)? {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    st.busy = true;
                    // Source address and port are in the buffer: send it straight back.
                    // A full send buffer drops the echo, as UDP may.
                    if io.send_back(id)?.is_ok() {
                        self.stats.udp_datagrams += 1;
                    }
                }
                Err(NetError::NoSuchSocket) => return Err(Fault::Gone),
                Err(_) => return Ok(()),
            }
        }
        Ok(())
    }

    fn accept(&mut self, io: &mut Io<'_>, st: &mut Step) -> Result<(), Fault> {
        if let Some(l) = self.tcp_echo {
            while self.echo.len() < MAX_ECHO_CONNS {
                match rpc(io.s.tcp_accept(l))? {
                    Ok(Some(id)) => {
                        self.echo.push(EchoConn { id, pending: Vec::new(), peer_closed: false });
                        self.stats.tcp_conns += 1;
                        st.busy = true;
                    }
                    Ok(None) => break,
                    Err(NetError::NoSuchSocket) => return Err(Fault::Gone),
                    Err(_) => break,
                }
            }
        }
        if let Some(l) = self.http {
            while self.web.len() < MAX_HTTP_CONNS {
                match rpc(io.s.tcp_accept(l))? {
                    Ok(Some(id)) => {
                        self.web.push(HttpConn { id, since_ns: u64::MAX, phase: HttpPhase::Reading(Vec::new()) });
                        st.busy = true;
                    }
                    Ok(None) => break,
                    Err(NetError::NoSuchSocket) => return Err(Fault::Gone),
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    fn http_conn(
        &mut self,
        c: &mut HttpConn,
        io: &mut Io<'_>,
        system: &dyn System,
        now_ns: u64,
        st: &mut Step,
    ) -> Result<Next, Fault> {
        if c.since_ns == u64::MAX {
            c.since_ns = now_ns;
        }
        if now_ns.saturating_sub(c.since_ns) > HTTP_TIMEOUT_NS {
            let _ = rpc(io.s.close(c.id))?;
            return Ok(Next::Done);
        }
        for _ in 0..ROUNDS {
            match &mut c.phase {
                HttpPhase::Reading(req) => {
                    let resp = match io.recv(c.id)? {
                        Ok(0) => return Ok(Next::Keep),
                        Ok(_) => {
                            st.busy = true;
                            let room = (http::MAX_REQUEST + 1).saturating_sub(req.len());
                            let data = io.data();
                            req.extend_from_slice(&data[..data.len().min(room)]);
                            match http::parse_request(req) {
                                Parsed::Incomplete => continue,
                                Parsed::Error(status) => http::error_response(status),
                                Parsed::Request(r) => match http::route(&r) {
                                    Route::Error(status) => http::error_response(status),
                                    route => self.status_page(io, system, route)?,
                                },
                            }
                        }
                        // The peer stopped sending before its request was complete.
                        Err(NetError::Closed) if !req.is_empty() => http::error_response(Status::BadRequest),
                        Err(_) => {
                            let _ = rpc(io.s.close(c.id))?;
                            return Ok(Next::Done);
                        }
                    };
                    self.stats.http_requests += 1;
                    c.phase = HttpPhase::Sending { resp, off: 0 };
                }
                HttpPhase::Sending { resp, off } => match io.send(c.id, &resp[*off..])? {
                    Ok(n) => {
                        *off += n as usize;
                        if *off >= resp.len() {
                            c.phase = HttpPhase::Draining;
                        } else if n == 0 {
                            return Ok(Next::Keep);
                        }
                        st.busy = true;
                    }
                    Err(_) => {
                        let _ = rpc(io.s.close(c.id))?;
                        return Ok(Next::Done);
                    }
                },
                HttpPhase::Draining => {
                    return match rpc(io.s.send_drained(c.id))? {
                        Ok(false) => Ok(Next::Keep),
                        Ok(true) | Err(_) => {
                            let _ = rpc(io.s.close(c.id))?;
                            Ok(Next::Done)
                        }
                    };
                }
            }
        }
        Ok(Next::Keep)
    }

    /// The status page or its JSON, with the live domain table and the stack's counters.
    fn status_page(&mut self, io: &mut Io<'_>, system: &dyn System, route: Route) -> Result<Vec<u8>, Fault> {
        let stack: StackStats = rpc(io.s.stats())?;
        let table = match self.table.take() {
            Some(t) => Some(t),
            None => RRef::try_new(DomainTable {
                rows: [DomainRow::default(); TABLE_ROWS],
                len: 0,
                uptime_ms: 0,
                shared_heap_used: 0,
                shared_heap_size: 0,
            })
            .ok(),
        };
        // The system's answer is optional: without it the page says "unavailable".
        self.table = table.and_then(|t| system.domains(t).ok());
        // Counted before rendering, so the page includes the request it answers.
        let mut services = self.stats;
        services.http_requests += 1;
        let view = StatusView { table: self.table.as_deref(), stack: Some(&stack), services: &services };
        Ok(match route {
            Route::StatusJson => http::response(Status::Ok, "application/json", http::status_json(&view).as_bytes()),
            _ => http::response(Status::Ok, "text/html; charset=utf-8", http::status_html(&view).as_bytes()),
        })
    }
}

/// One TCP echo connection: send back what is pending, then receive more; close once the
/// peer closed and everything was echoed.
fn echo_conn(c: &mut EchoConn, io: &mut Io<'_>, stats: &mut ServiceStats, st: &mut Step) -> Result<Next, Fault> {
    for _ in 0..ROUNDS {
        if !c.pending.is_empty() {
            match io.send(c.id, &c.pending)? {
                Ok(0) => break,
                Ok(n) => {
                    c.pending.drain(..n as usize);
                    st.busy = true;
                    continue;
                }
                Err(_) => {
                    let _ = rpc(io.s.close(c.id))?;
                    return Ok(Next::Done);
                }
            }
        }
        if c.peer_closed {
            break;
        }
        match io.recv(c.id)? {
            Ok(0) => break,
            Ok(n) => {
                stats.tcp_bytes += n as u64;
                st.busy = true;
                match io.send_back(c.id)? {
                    Ok(k) => {
                        let data = io.data();
                        c.pending.extend_from_slice(&data[(k as usize).min(data.len())..]);
                    }
                    Err(_) => {
                        let _ = rpc(io.s.close(c.id))?;
                        return Ok(Next::Done);
                    }
                }
            }
            Err(NetError::Closed) => {
                c.peer_closed = true;
                st.busy = true;
            }
            Err(_) => {
                let _ = rpc(io.s.close(c.id))?;
                return Ok(Next::Done);
            }
        }
    }
    if c.peer_closed && c.pending.is_empty() {
        let _ = rpc(io.s.close(c.id))?;
        return Ok(Next::Done);
    }
    Ok(Next::Keep)
}
