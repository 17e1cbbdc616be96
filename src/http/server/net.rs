//! Socket-level limits tiny_http leaves open, set on the listening socket so every accepted
//! connection inherits them (Linux copies SO_RCVTIMEO/SO_SNDTIMEO to accepted sockets).

use std::io;
use std::net::TcpListener;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

fn setsockopt<T>(fd: i32, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live, correctly sized option value for this call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every read and write on an accepted connection fails after `timeout` without progress:
/// an idle keep-alive connection, a slow-loris header or a stalled upload ends instead of
/// holding a thread forever. Also defers accept until the client has sent something.
pub fn limit_listener(listener: &TcpListener, timeout: Duration) -> io::Result<()> {
    let fd = listener.as_raw_fd();
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)?;
    let secs: libc::c_int = timeout.as_secs().max(1) as libc::c_int;
    // Best effort: not every platform has TCP_DEFER_ACCEPT.
    let _ = setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, &secs);
    // tiny_http writes a response in several writes (head, then body chunks); with Nagle's
    // algorithm on, a page larger than one segment waits for the client's delayed ACK
    // (~40 ms) before its last part leaves. Accepted sockets inherit TCP_NODELAY.
    let one: libc::c_int = 1;
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, &one)?;
    Ok(())
}

/// Raises the soft open-files limit to the hard limit, so running out of descriptors
/// (which kills tiny_http's accept loop) takes far more connections. Returns the new limit.
pub fn raise_open_files_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read a properly initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return Some(lim.rlim_max);
            }
        }
    }
    Some(lim.rlim_cur)
}

fn sockaddr_of(storage: &libc::sockaddr_storage) -> Option<std::net::SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
    match storage.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(a.sin6_port))))
        }
        _ => None,
    }
}

pub(crate) fn peer_of(fd: i32) -> Option<std::net::SocketAddr> {
    // SAFETY: getpeername fills at most `len` bytes of a zeroed sockaddr_storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getpeername(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        sockaddr_of(&storage)
    }
}

/// Answers a connection that tiny_http must never see again and closes it at the TCP level.
///
/// tiny_http drains an unread body when its request is dropped, and to do so allocates a
/// buffer of the *announced* remaining length at once: a request announcing
/// `Content-Length: 100000000000` would abort the whole process on drop. For such requests
/// the caller forgets the tiny_http request instead of dropping it; this function writes the
/// response straight to the client's socket (found by its peer address among our open
/// descriptors) and shuts the socket down. The connection's tiny_http thread stays parked, a
/// small, logged cost paid only for abusive requests.
pub fn answer_and_close(peer: std::net::SocketAddr, raw_response: &[u8]) -> bool {
    let mut found = false;
    for fd in own_fds() {
        if peer_of(fd) != Some(peer) {
            continue;
        }
        if !found {
            // SAFETY: fd is an open socket of this process (tiny_http keeps it open: the
            // request owning it is never dropped); send does not take ownership.
            unsafe {
                libc::send(
                    fd,
                    raw_response.as_ptr() as *const libc::c_void,
                    raw_response.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                );
            }
        }
        // SAFETY: as above; shutdown ends the TCP connection without closing the descriptor.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
        found = true;
    }
    found
}

/// Makes the connection from `peer` read no further requests (a graceful stop): what tiny_http
/// already read is still answered, then its thread sees end-of-file and closes it.
pub fn stop_reading(peer: std::net::SocketAddr) {
    for fd in own_fds() {
        if peer_of(fd) == Some(peer) {
            // SAFETY: fd is an open socket of this process; shutdown does not close it.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RD);
            }
        }
    }
}

/// The descriptors this process has open, from `/proc/self/fd`.
pub(crate) fn own_fds() -> Vec<i32> {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn local_port(fd: i32) -> Option<u16> {
    // SAFETY: getsockname fills at most `len` bytes of a zeroed sockaddr_storage.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, &mut storage as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
            return None;
        }
        sockaddr_of(&storage).map(|a| a.port())
    }
}

/// An accepted client connection of this process, as the kernel sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClientSocket {
    pub fd: i32,
    /// The socket's inode: tells a reused descriptor number from the same socket.
    pub inode: u64,
    pub peer: std::net::SocketAddr,
}

pub(crate) fn socket_inode(fd: i32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    let link = link.to_str()?;
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Every connected TCP socket of this process whose local port is `port`: the connections
/// accepted on our listener (outgoing connections use other local ports; the listener itself
/// has no peer), each once (tiny_http holds two descriptors per connection, a reader and a
/// writer). `known` maps inodes already seen to their peer, saving two system calls each.
pub fn client_sockets(
    port: u16,
    known: &std::collections::HashMap<u64, std::net::SocketAddr>,
) -> Vec<ClientSocket> {
    let mut out = Vec::new();
    let mut listed = std::collections::HashSet::new();
    for fd in own_fds() {
        let Some(inode) = socket_inode(fd) else {
            continue;
        };
        if !listed.insert(inode) {
            continue;
        }
        if let Some(peer) = known.get(&inode) {
            out.push(ClientSocket {
                fd,
                inode,
                peer: *peer,
            });
            continue;
        }
        if local_port(fd) != Some(port) {
            continue;
        }
        if let Some(peer) = peer_of(fd) {
            out.push(ClientSocket { fd, inode, peer });
        }
    }
    out
}

/// Bytes the kernel has received on a TCP connection so far (TCP_INFO), read or not.
pub fn bytes_received(fd: i32) -> Option<u64> {
    // SAFETY: getsockopt writes at most `len` bytes into a zeroed tcp_info.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut _ as *mut libc::c_void,
            &mut len,
        );
        (rc == 0).then_some(info.tcpi_bytes_received)
    }
}

/// Ends a client connection for good, if `fd` is still the socket `inode`.
///
/// `shutdown(2)` alone is not enough: Linux keeps queueing what a client sends after
/// `SHUT_RD`, so tiny_http's thread would go on reading a flood. So every descriptor of the
/// socket (tiny_http holds a reader and a writer) is replaced, with `dup2`, by one end of a
/// socket pair whose other end is closed: the TCP socket loses its last descriptor and is
/// closed (a reset for a client still sending), and tiny_http's next read sees end-of-file,
/// its thread ends and closes the stand-in. The descriptor numbers stay valid throughout, so
/// tiny_http never touches a number that could belong to something else.
/// Held while a descriptor is checked and then replaced or closed (here and in the
/// connection hand-off), so a number is never swapped after it came to mean another socket.
pub static SWAPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn shut_down(sock: &ClientSocket) -> bool {
    let _swapping = SWAPS.lock().unwrap_or_else(|p| p.into_inner());
    if socket_inode(sock.fd) != Some(sock.inode) {
        return false;
    }
    // SAFETY: fd is an open socket of this process; shutdown does not close the descriptor.
    unsafe {
        libc::shutdown(sock.fd, libc::SHUT_RDWR);
    }
    let mut pair = [-1; 2];
    // SAFETY: socketpair writes two new descriptors into `pair`.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        return true; // shut down at least
    }
    // SAFETY: pair[1] is ours; closing it makes reads on pair[0] return end-of-file.
    unsafe {
        libc::close(pair[1]);
    }
    let fds = own_fds()
        .into_iter()
        .filter(|fd| *fd != pair[0] && socket_inode(*fd) == Some(sock.inode));
    for fd in fds {
        // SAFETY: fd was just seen to be this socket; dup2 atomically makes it refer to the
        // stand-in instead, without ever leaving the number closed.
        unsafe {
            libc::dup3(pair[0], fd, libc::O_CLOEXEC);
        }
    }
    // SAFETY: pair[0] is ours; the duplicates keep the stand-in open for tiny_http.
    unsafe {
        libc::close(pair[0]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The accepted socket of a limited listener has TCP_NODELAY on, so a response written
    /// in several parts never waits for the client's delayed ACK.
    #[test]
    fn accepted_sockets_inherit_no_delay_and_the_timeouts() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        limit_listener(&listener, Duration::from_secs(3)).unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // TCP_DEFER_ACCEPT hands the connection over once data arrives.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (server, _) = listener.accept().unwrap();
        assert!(server.nodelay().unwrap(), "TCP_NODELAY inherited");
        assert_eq!(server.read_timeout().unwrap(), Some(Duration::from_secs(3)));
    }
}
