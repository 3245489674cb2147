//! A TCP proxy that tests put between the app and Redis or MariaDB to
//! produce the faults that killing a server cannot: replies that come late,
//! a server that accepts and never answers, connections cut mid-stream.
//!
//! Threads: one listener, and per connection four. The connection's own
//! thread waits out a stall, connects upstream, then forwards upstream →
//! client; three helpers read the client, forward client → upstream and
//! read upstream. Readers queue each chunk with its arrival time; writers
//! forward a queue when the current fault allows. Holding bytes in queues
//! (rather than sleeping in a pump) is what lets a stall keep bytes without
//! losing them and latency shift a pipelined stream without slowing it.
//!
//! Connection threads block at most [`TICK`] at a time (socket timeouts,
//! timed condvar waits); fault changes, queued bytes and closes wake them at
//! once. The listener blocks in `accept`, and Drop wakes it with a
//! connection of its own.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The longest any proxy thread blocks before it looks again at its
/// connection: bounds how late a missed wake-up could be noticed.
const TICK: Duration = Duration::from_millis(50);
/// Bytes one direction of one connection holds before it stops reading, so
/// a stalled or slow peer pushes back on the sender (TCP flow control)
/// instead of growing the proxy's memory without bound.
const HOLD_LIMIT: usize = 1 << 20;
const READ_SIZE: usize = 64 * 1024;
/// Upstream is on loopback: it answers at once or is down.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What the proxy does to the traffic; changed with [`ChaosProxy::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything as it arrives.
    Pass,
    /// Deliver every chunk the server sends (upstream → client) this long
    /// after it reached the proxy, in order; chunks behind it are not held
    /// up further, so a pipelined stream keeps its throughput. Requests
    /// (client → upstream) are not delayed: a slow server delays its
    /// replies, and one delay per round trip keeps `d` the figure a test
    /// reasons about.
    Latency(Duration),
    /// Accept and never answer: connections stay open, bytes in both
    /// directions are held (neither forwarded nor dropped), and a new
    /// connection is accepted but not connected upstream, so a MariaDB
    /// client never sees the server's greeting.
    Stall,
}

/// A TCP proxy on `127.0.0.1:<free port>` in front of one upstream server,
/// with a [`Fault`] that can change at any time. Dropping it closes its
/// listener and every connection and joins its threads.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

impl ChaosProxy {
    /// Listens on a free loopback port and forwards to `upstream`, in
    /// [`Fault::Pass`] mode.
    pub fn start(upstream: SocketAddr) -> io::Result<ChaosProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            stopping: AtomicBool::new(false),
            registry: Mutex::default(),
        });
        let listener = thread::Builder::new()
            .name("chaos-listener".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept_loop(&listener, &shared)
            })?;
        Ok(ChaosProxy {
            addr,
            shared,
            listener: Some(listener),
        })
    }

    /// Where the app connects instead of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Applies `fault` at once, to open connections and new ones.
    pub fn set(&self, fault: Fault) {
        *lock(&self.shared.fault) = fault;
        for conn in self.shared.open_connections() {
            conn.wake();
        }
    }

    pub fn add_latency(&self, d: Duration) {
        self.set(Fault::Latency(d))
    }

    /// See [`Fault::Stall`].
    pub fn stall(&self) {
        self.set(Fault::Stall)
    }

    /// Back to [`Fault::Pass`]: held bytes are forwarded in order and
    /// connections accepted during a stall are connected upstream.
    pub fn heal(&self) {
        self.set(Fault::Pass)
    }

    /// Closes every open connection at once, held bytes included, and keeps
    /// accepting new ones in the current mode. Both sockets of each
    /// connection are shut down, which sends a FIN: the client reads EOF
    /// (a reset follows only if it had sent bytes the proxy had not read,
    /// e.g. while stalled, or if it writes again).
    pub fn cut(&self) {
        let open: Vec<Arc<Conn>> = lock(&self.shared.registry)
            .open
            .drain()
            .map(|(_, conn)| conn)
            .collect();
        for conn in open {
            conn.close();
        }
    }

    /// Client connections open right now, including those accepted during
    /// a stall and not yet connected upstream. A connection stops counting
    /// when both directions have closed (during a stall a client's close is
    /// held like its bytes, so it still counts), or at once when cut.
    pub fn connections(&self) -> usize {
        lock(&self.shared.registry).open.len()
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            // `accept` has no timeout in std: a connection of our own wakes
            // it, and it sees `stopping`. Should that connect ever fail, the
            // listener thread is left blocked rather than Drop hanging.
            if TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT).is_ok() {
                let _ = listener.join();
            }
        }
        self.cut();
        let threads = std::mem::take(&mut lock(&self.shared.registry).threads);
        for thread in threads {
            let _ = thread.join();
        }
    }
}

struct Shared {
    upstream: SocketAddr,
    /// Never held while taking another lock, so any thread may read it.
    fault: Mutex<Fault>,
    stopping: AtomicBool,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    /// Every connection thread not yet joined, finished ones included until
    /// the next accept prunes them.
    threads: Vec<JoinHandle<()>>,
}

impl Shared {
    fn fault(&self) -> Fault {
        *lock(&self.fault)
    }

    fn open_connections(&self) -> Vec<Arc<Conn>> {
        lock(&self.registry).open.values().cloned().collect()
    }

    fn admit(self: &Arc<Self>, client: TcpStream) {
        // Small RESP and MySQL packets must not wait for Nagle's algorithm:
        // that would add its own latency to every fault.
        let _ = client.set_nodelay(true);
        let Ok(handle) = client.try_clone() else {
            return;
        };
        let conn = Arc::new(Conn::new(handle));
        let mut registry = lock(&self.registry);
        // Checked under the registry lock, so Drop's `cut` sees every
        // connection admitted before it.
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        registry.threads.retain(|t| !t.is_finished());
        let id = registry.next_id;
        registry.next_id += 1;
        let spawned = thread::Builder::new().name("chaos-conn".into()).spawn({
            let shared = Arc::clone(self);
            let conn = Arc::clone(&conn);
            move || {
                conn.serve(&shared, client);
                lock(&shared.registry).open.remove(&id);
            }
        });
        // When the thread cannot start, dropping `client` closes it.
        if let Ok(thread) = spawned {
            registry.open.insert(id, conn);
            registry.threads.push(thread);
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((client, _)) => shared.admit(client),
            // Usually out of file descriptors: wait rather than spin.
            Err(_) => thread::sleep(TICK),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

/// One client connection and, once connected, its upstream connection.
struct Conn {
    state: Mutex<ConnState>,
    /// Signalled whenever bytes are queued or taken, the fault changes, or
    /// the connection closes.
    changed: Condvar,
}

struct ConnState {
    closed: bool,
    /// Handles kept only to shut the sockets down from `close`.
    client: TcpStream,
    upstream: Option<TcpStream>,
    to_upstream: Queue,
    to_client: Queue,
}

impl ConnState {
    fn queue(&mut self, direction: Direction) -> &mut Queue {
        match direction {
            Direction::ToUpstream => &mut self.to_upstream,
            Direction::ToClient => &mut self.to_client,
        }
    }
}

/// Bytes read from one side and not yet written to the other.
#[derive(Default)]
struct Queue {
    /// Each chunk as one read returned it, with when it arrived.
    chunks: VecDeque<(Instant, Vec<u8>)>,
    held: usize,
    /// The sender closed its side: pass that on once the chunks are out.
    eof: bool,
}

enum Next {
    Chunk(Vec<u8>),
    Eof,
    Closed,
}

impl Conn {
    fn new(client: TcpStream) -> Conn {
        Conn {
            state: Mutex::new(ConnState {
                closed: false,
                client,
                upstream: None,
                to_upstream: Queue::default(),
                to_client: Queue::default(),
            }),
            changed: Condvar::new(),
        }
    }

    /// The connection thread: waits out a stall, connects upstream, then
    /// forwards both ways until both sides have closed or `close` is called.
    fn serve(&self, shared: &Shared, client: TcpStream) {
        if !self.wait_unstalled(shared) {
            return;
        }
        // When upstream is down the client sees its connection closed, as
        // it would without the proxy.
        let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
            return self.close();
        };
        if self.forward(shared, client, upstream).is_err() {
            self.close();
        }
    }

    fn forward(&self, shared: &Shared, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
        upstream.set_nodelay(true)?;
        for socket in [&client, &upstream] {
            socket.set_read_timeout(Some(TICK))?;
            socket.set_write_timeout(Some(TICK))?;
        }
        if !self.attach(upstream.try_clone()?) {
            return Ok(());
        }
        let client_in = client.try_clone()?;
        let upstream_in = upstream.try_clone()?;
        thread::scope(|s| {
            let named = |name: &str| thread::Builder::new().name(name.into());
            let helpers = [
                named("chaos-read")
                    .spawn_scoped(s, move || self.read_into(Direction::ToUpstream, client_in)),
                named("chaos-write").spawn_scoped(s, move || {
                    self.write_from(shared, Direction::ToUpstream, upstream)
                }),
                named("chaos-read")
                    .spawn_scoped(s, move || self.read_into(Direction::ToClient, upstream_in)),
            ];
            if helpers.iter().any(Result::is_err) {
                self.close();
            }
            self.write_from(shared, Direction::ToClient, client);
        });
        Ok(())
    }

    /// Keeps a handle on the upstream socket for `close`; false when the
    /// connection was closed meanwhile.
    fn attach(&self, upstream: TcpStream) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            let _ = upstream.shutdown(Shutdown::Both);
            return false;
        }
        state.upstream = Some(upstream);
        true
    }

    /// Closes both sockets and drops whatever is held.
    fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.to_upstream = Queue::default();
        state.to_client = Queue::default();
        // `shutdown`, not just dropping handles: it sends the FIN now and
        // wakes this connection's threads blocked in read or write.
        let _ = state.client.shutdown(Shutdown::Both);
        if let Some(upstream) = &state.upstream {
            let _ = upstream.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
    }

    /// Wakes the waiting threads, e.g. after a fault change. Taking the lock
    /// first means a thread between its check and its wait cannot miss it.
    fn wake(&self) {
        let _state = lock(&self.state);
        self.changed.notify_all();
    }

    /// Waits while the proxy is stalled; false once the connection closed.
    fn wait_unstalled(&self, shared: &Shared) -> bool {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return false;
            }
            if shared.fault() != Fault::Stall {
                return true;
            }
            state = wait(&self.changed, state, TICK);
        }
    }

    /// Reads `source` into the queue for `direction`, with arrival times,
    /// until it closes.
    fn read_into(&self, direction: Direction, mut source: TcpStream) {
        let mut buf = vec![0; READ_SIZE];
        loop {
            if !self.wait_for_room(direction) {
                return;
            }
            match source.read(&mut buf) {
                Ok(0) => return self.push(direction, None),
                Ok(n) => self.push(direction, Some(buf[..n].to_vec())),
                Err(e) if is_timeout(&e) => {}
                Err(_) => return self.close(),
            }
        }
    }

    fn wait_for_room(&self, direction: Direction) -> bool {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return false;
            }
            if state.queue(direction).held < HOLD_LIMIT {
                return true;
            }
            state = wait(&self.changed, state, TICK);
        }
    }

    /// Queues a chunk, or the end of the stream (`None`).
    fn push(&self, direction: Direction, chunk: Option<Vec<u8>>) {
        let arrived = Instant::now();
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        let queue = state.queue(direction);
        match chunk {
            Some(chunk) => {
                queue.held += chunk.len();
                queue.chunks.push_back((arrived, chunk));
            }
            None => queue.eof = true,
        }
        self.changed.notify_all();
    }

    /// Writes the queue for `direction` to `sink` as the fault allows, then
    /// passes the end of the stream on.
    fn write_from(&self, shared: &Shared, direction: Direction, mut sink: TcpStream) {
        loop {
            let chunk = match self.next_chunk(shared, direction) {
                Next::Chunk(chunk) => chunk,
                Next::Eof => {
                    let _ = sink.shutdown(Shutdown::Write);
                    return;
                }
                Next::Closed => return,
            };
            let mut sent = 0;
            while sent < chunk.len() {
                // A stall that begins mid-chunk holds the rest of it too.
                if !self.wait_unstalled(shared) {
                    return;
                }
                match sink.write(&chunk[sent..]) {
                    Ok(0) => return self.close(),
                    Ok(n) => sent += n,
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => return self.close(),
                }
            }
        }
    }

    /// Waits until the oldest chunk is due under the current fault and takes
    /// it. Each chunk is due at its arrival plus the delay in force now, so
    /// chunks leave in arrival order, each `d` after it came, however many
    /// are queued; and a changed fault applies to chunks already queued.
    fn next_chunk(&self, shared: &Shared, direction: Direction) -> Next {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Next::Closed;
            }
            let delay = match (shared.fault(), direction) {
                (Fault::Stall, _) => None,
                (Fault::Latency(d), Direction::ToClient) => Some(d),
                _ => Some(Duration::ZERO),
            };
            let queue = state.queue(direction);
            let pause = match (delay, queue.chunks.front()) {
                (None, _) => TICK,
                (Some(delay), Some(&(arrived, _))) => {
                    let now = Instant::now();
                    match arrived.checked_add(delay) {
                        Some(due) if due <= now => {
                            if let Some((_, chunk)) = queue.chunks.pop_front() {
                                queue.held -= chunk.len();
                                // The reader may be waiting for room.
                                self.changed.notify_all();
                                return Next::Chunk(chunk);
                            }
                            TICK
                        }
                        Some(due) => (due - now).min(TICK),
                        None => TICK,
                    }
                }
                (Some(_), None) if queue.eof => return Next::Eof,
                (Some(_), None) => TICK,
            };
            state = wait(&self.changed, state, pause);
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

// A panicking proxy thread must not turn every later use of the proxy into a
// panic too: the state it guards stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// A server behind the proxy: sends `greeting` on connect (MariaDB
    /// speaks first), then echoes every chunk. It reports each chunk it
    /// receives and counts the connections it accepted.
    struct Upstream {
        addr: SocketAddr,
        accepted: Arc<AtomicUsize>,
        received: mpsc::Receiver<Vec<u8>>,
        /// While set, echoes wait: lets a test decide when a reply leaves.
        replies_paused: Arc<AtomicBool>,
        stopping: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl Upstream {
        fn echo() -> Upstream {
            Upstream::speaking_first(b"")
        }

        fn speaking_first(greeting: &'static [u8]) -> Upstream {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind upstream");
            let addr = listener.local_addr().expect("upstream address");
            let accepted = Arc::new(AtomicUsize::new(0));
            let replies_paused = Arc::new(AtomicBool::new(false));
            let stopping = Arc::new(AtomicBool::new(false));
            let (tx, received) = mpsc::sync_channel(64);
            let thread = thread::spawn({
                let (accepted, paused, stopping) =
                    (accepted.clone(), replies_paused.clone(), stopping.clone());
                move || {
                    for stream in listener.incoming() {
                        if stopping.load(Ordering::SeqCst) {
                            return;
                        }
                        let Ok(stream) = stream else { continue };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        let (tx, paused) = (tx.clone(), paused.clone());
                        thread::spawn(move || echo(stream, greeting, &paused, &tx));
                    }
                }
            });
            Upstream {
                addr,
                accepted,
                received,
                replies_paused,
                stopping,
                thread: Some(thread),
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    fn echo(
        mut stream: TcpStream,
        greeting: &[u8],
        paused: &AtomicBool,
        tx: &mpsc::SyncSender<Vec<u8>>,
    ) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        if stream.write_all(greeting).is_err() {
            return;
        }
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            // Bounded, so a flood does not pile up here.
            let _ = tx.try_send(buf[..n].to_vec());
            let deadline = Instant::now() + Duration::from_secs(5);
            while paused.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if stream.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    }

    impl Drop for Upstream {
        fn drop(&mut self) {
            self.stopping.store(true, Ordering::SeqCst);
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }

    fn start(upstream: &Upstream) -> ChaosProxy {
        ChaosProxy::start(upstream.addr).expect("start the proxy")
    }

    fn connect(proxy: &ChaosProxy) -> TcpStream {
        let stream = TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(2))
            .expect("connect to the proxy");
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("read timeout");
        stream
    }

    fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        stream.read_exact(&mut buf).expect("the expected bytes");
        buf
    }

    fn round_trip(stream: &mut TcpStream, message: &[u8]) {
        stream.write_all(message).expect("send");
        assert_eq!(read_n(stream, message.len()), message);
    }

    /// True when nothing arrives (and the connection stays open) for `quiet`.
    fn silent_for(stream: &mut TcpStream, quiet: Duration) -> bool {
        stream.set_read_timeout(Some(quiet)).expect("read timeout");
        let read = stream.read(&mut [0; 1]);
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("read timeout");
        matches!(read, Err(e) if is_timeout(&e))
    }

    /// True when the peer closed: EOF or a reset, within the read timeout.
    fn closed(stream: &mut TcpStream) -> bool {
        match stream.read(&mut [0; 1]) {
            Ok(n) => n == 0,
            Err(e) => !is_timeout(&e),
        }
    }

    fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !condition() {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn passes_bytes_both_ways_unchanged() {
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        let mut client = connect(&proxy);
        round_trip(&mut client, b"PING\r\n");

        // More than one read's worth, sent while the echo comes back, so
        // that neither side's buffers fill up.
        let payload: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
        let mut writer = client.try_clone().expect("clone");
        let sending = thread::spawn({
            let payload = payload.clone();
            move || writer.write_all(&payload)
        });
        assert!(
            read_n(&mut client, payload.len()) == payload,
            "bytes changed on the way"
        );
        sending.join().expect("writer thread").expect("send");
        assert_eq!(proxy.connections(), 1);
    }

    #[test]
    fn serves_many_connections_at_once() {
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        let mut clients: Vec<TcpStream> = (0..20).map(|_| connect(&proxy)).collect();
        thread::scope(|s| {
            for (i, client) in clients.iter_mut().enumerate() {
                s.spawn(move || {
                    for round in 0..10 {
                        round_trip(client, format!("client {i:02} round {round}\n").as_bytes());
                    }
                });
            }
        });
        assert_eq!(proxy.connections(), 20);
        drop(clients);
        assert!(
            wait_until(Duration::from_secs(2), || proxy.connections() == 0),
            "closed connections still counted: {}",
            proxy.connections()
        );
    }

    #[test]
    fn latency_delays_each_reply_by_d_and_keeps_pipelined_throughput() {
        const D: Duration = Duration::from_millis(100);
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        let mut client = connect(&proxy);
        round_trip(&mut client, b"warm up\n");
        proxy.add_latency(D);

        let started = Instant::now();
        round_trip(&mut client, b"one\n");
        let rtt = started.elapsed();
        assert!(rtt >= D, "reply came after {rtt:?}, before the added {D:?}");
        assert!(rtt < D + Duration::from_millis(700), "reply took {rtt:?}");

        // 20 requests 10 ms apart, so that each reply reaches the proxy as
        // its own chunk. Delayed one after another they would take 2 s.
        let mut writer = client.try_clone().expect("clone");
        let sending = thread::spawn(move || {
            (0..20)
                .map(|i| {
                    let sent = Instant::now();
                    writer
                        .write_all(format!("req {i:02}\n").as_bytes())
                        .expect("send");
                    thread::sleep(Duration::from_millis(10));
                    sent
                })
                .collect::<Vec<Instant>>()
        });
        let started = Instant::now();
        let replied: Vec<Instant> = (0..20)
            .map(|i| {
                assert_eq!(read_n(&mut client, 7), format!("req {i:02}\n").as_bytes());
                Instant::now()
            })
            .collect();
        let total = started.elapsed();
        let sent = sending.join().expect("writer thread");
        for (i, (sent, replied)) in sent.iter().zip(&replied).enumerate() {
            let rtt = replied.duration_since(*sent);
            assert!(rtt >= D, "reply {i} came after {rtt:?}, before {D:?}");
        }
        assert!(
            total < Duration::from_millis(1200),
            "20 pipelined replies took {total:?}: their delays must overlap"
        );
    }

    #[test]
    fn latency_leaves_requests_undelayed() {
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        let mut client = connect(&proxy);
        proxy.add_latency(Duration::from_secs(3));
        client.write_all(b"GET k\r\n").expect("send");
        let got = upstream.received.recv_timeout(Duration::from_secs(1));
        assert_eq!(got.as_deref(), Ok(&b"GET k\r\n"[..]));
        assert!(
            silent_for(&mut client, Duration::from_millis(200)),
            "reply not delayed"
        );
    }

    #[test]
    fn stall_holds_bytes_both_ways_then_heal_delivers_them_in_order() {
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        let mut client = connect(&proxy);
        round_trip(&mut client, b"hello\n");
        let _ = upstream.received.recv_timeout(Duration::from_secs(1));

        // A reply the server sends after the stall began is held...
        upstream.replies_paused.store(true, Ordering::SeqCst);
        client.write_all(b"in flight\n").expect("send");
        let got = upstream.received.recv_timeout(Duration::from_secs(2));
        assert_eq!(got.as_deref(), Ok(&b"in flight\n"[..]));
        proxy.stall();
        upstream.replies_paused.store(false, Ordering::SeqCst);
        // ...and so are requests sent during the stall.
        for request in [&b"a\n"[..], b"b\n", b"c\n"] {
            client.write_all(request).expect("send");
        }
        assert!(
            silent_for(&mut client, Duration::from_millis(300)),
            "answered while stalled"
        );
        assert!(
            upstream.received.try_recv().is_err(),
            "forwarded while stalled"
        );
        assert_eq!(proxy.connections(), 1);

        proxy.heal();
        let expected = b"in flight\na\nb\nc\n";
        assert_eq!(read_n(&mut client, expected.len()), expected);
        round_trip(&mut client, b"after\n");
    }

    #[test]
    fn a_connection_opened_during_a_stall_gets_no_greeting_until_heal() {
        let upstream = Upstream::speaking_first(b"HELLO\n");
        let proxy = start(&upstream);
        proxy.stall();
        let mut client = connect(&proxy);
        assert!(wait_until(Duration::from_secs(2), || proxy.connections() == 1));
        assert!(
            silent_for(&mut client, Duration::from_millis(300)),
            "greeting while stalled"
        );
        assert_eq!(upstream.accepted(), 0, "connected upstream while stalled");

        proxy.heal();
        assert_eq!(read_n(&mut client, 6), b"HELLO\n");
        round_trip(&mut client, b"query\n");
    }

    #[test]
    fn cut_closes_open_connections_and_new_ones_still_work() {
        let upstream = Upstream::speaking_first(b"HI\n");
        let proxy = start(&upstream);
        let greeted = || {
            let mut client = connect(&proxy);
            assert_eq!(read_n(&mut client, 3), b"HI\n");
            client
        };
        let mut clients: Vec<TcpStream> = (0..3).map(|_| greeted()).collect();
        for client in &mut clients {
            round_trip(client, b"x\n");
        }
        proxy.cut();
        assert_eq!(proxy.connections(), 0);
        for client in &mut clients {
            assert!(closed(client), "a cut connection stayed open");
        }
        let mut fresh = greeted();
        round_trip(&mut fresh, b"y\n");

        // A cut keeps the mode: during a stall, new connections still wait,
        // and one waiting for the heal is cut too.
        proxy.stall();
        let mut waiting = connect(&proxy);
        assert!(wait_until(Duration::from_secs(2), || proxy.connections() == 2));
        proxy.cut();
        assert!(closed(&mut fresh), "a stalled connection survived the cut");
        assert!(
            closed(&mut waiting),
            "a waiting connection survived the cut"
        );
        let mut later = connect(&proxy);
        assert!(
            silent_for(&mut later, Duration::from_millis(200)),
            "greeting while stalled"
        );
        proxy.heal();
        assert_eq!(read_n(&mut later, 3), b"HI\n");
    }

    #[test]
    fn drop_returns_promptly_with_stalled_connections() {
        let upstream = Upstream::echo();
        let proxy = start(&upstream);
        // A client that sends and never reads: the echo backs up through
        // the proxy until the proxy's writer to it blocks, its queues fill
        // and the client's own writes time out.
        let flooder = connect(&proxy);
        let mut writer = flooder.try_clone().expect("clone");
        writer
            .set_write_timeout(Some(Duration::from_millis(100)))
            .expect("write timeout");
        let backed_up = Arc::new(AtomicBool::new(false));
        let flooding = thread::spawn({
            let backed_up = Arc::clone(&backed_up);
            move || {
                let chunk = vec![7; 256 * 1024];
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline {
                    match writer.write(&chunk) {
                        Ok(_) => {}
                        Err(e) if is_timeout(&e) => backed_up.store(true, Ordering::SeqCst),
                        Err(_) => return,
                    }
                }
            }
        });
        assert!(
            wait_until(Duration::from_secs(5), || backed_up.load(Ordering::SeqCst)),
            "the flood never backed up"
        );
        let mut quiet = connect(&proxy);
        round_trip(&mut quiet, b"x\n");
        proxy.stall();
        quiet.write_all(b"held\n").expect("send");
        let mut waiting = connect(&proxy);
        waiting.write_all(b"held too\n").expect("send");
        assert!(wait_until(Duration::from_secs(2), || proxy.connections() == 3));

        let started = Instant::now();
        drop(proxy);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "drop took {took:?}");
        assert!(closed(&mut quiet));
        assert!(closed(&mut waiting));
        flooding.join().expect("flooding thread");
    }
}
