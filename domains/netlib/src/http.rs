//! HTTP/1.1 for the status page: request parsing, routing and rendering, as pure functions.
//!
//! Only what the status page needs: a request is read up to its blank line (at most
//! [`MAX_REQUEST`] bytes), any body is ignored, and every response closes the connection.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use frond_interface::net::{DomainTable, ServiceStats, StackStats, TABLE_ROWS};

/// Longest request head (request line, headers and the blank line) accepted.
pub const MAX_REQUEST: usize = 4096;
/// Longest method token accepted.
const MAX_METHOD: usize = 16;

/// The statuses the server answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    HeaderTooLarge,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::HeaderTooLarge => 431,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::HeaderTooLarge => "Request Header Fields Too Large",
        }
    }
}

/// A parsed request line (headers are checked for form, then ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The request target without its query string.
    pub path: &'a str,
    pub version: &'a str,
}

/// What the bytes received so far amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No blank line yet, and nothing wrong so far.
    Incomplete,
    Request(Request<'a>),
    /// Answer with this status and close.
    Error(Status),
}

/// End of the head in `buf` (index just past the blank line), looking only at the first
/// [`MAX_REQUEST`] bytes. Lines end with CRLF or a bare LF.
fn head_end(buf: &[u8]) -> Option<usize> {
    let buf = &buf[..buf.len().min(MAX_REQUEST)];
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Parses a request line: `METHOD SP TARGET SP HTTP/1.x`.
fn request_line(line: &str) -> Option<Request<'_>> {
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    if method.is_empty() || method.len() > MAX_METHOD || !method.bytes().all(is_tchar) {
        return None;
    }
    if !target.starts_with('/') || !target.bytes().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some(Request { method, path, version })
}

fn header_line(line: &str) -> bool {
    match line.split_once(':') {
        Some((name, value)) => {
            !name.is_empty() && name.bytes().all(is_tchar) && value.bytes().all(|c| c == b'\t' || !c.is_ascii_control())
        }
        None => false,
    }
}

/// Strips a trailing CR.
fn trim_cr(line: &str) -> &str {
    line.strip_suffix('\r').unwrap_or(line)
}

/// Judges the bytes of a request received so far.
pub fn parse_request(buf: &[u8]) -> Parsed<'_> {
    let Some(end) = head_end(buf) else {
        // A complete but malformed request line is rejected without waiting for more.
        if let Some(nl) = buf.iter().position(|&c| c == b'\n') {
            let ok = core::str::from_utf8(&buf[..nl]).ok().map(trim_cr).and_then(request_line).is_some();
            if !ok {
                return Parsed::Error(Status::BadRequest);
            }
        }
        if buf.len() >= MAX_REQUEST {
            return Parsed::Error(Status::HeaderTooLarge);
        }
        return Parsed::Incomplete;
    };
    let Ok(head) = core::str::from_utf8(&buf[..end]) else {
        return Parsed::Error(Status::BadRequest);
    };
    let mut lines = head.split('\n').map(trim_cr);
    let Some(req) = lines.next().and_then(request_line) else {
        return Parsed::Error(Status::BadRequest);
    };
    for line in lines {
        if line.is_empty() {
            break;
        }
        if !header_line(line) {
            return Parsed::Error(Status::BadRequest);
        }
    }
    Parsed::Request(req)
}

/// Where a well-formed request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    StatusHtml,
    StatusJson,
    Error(Status),
}

pub fn route(req: &Request<'_>) -> Route {
    if req.method != "GET" {
        return Route::Error(Status::MethodNotAllowed);
    }
    match req.path {
        "/" => Route::StatusHtml,
        "/status.json" => Route::StatusJson,
        _ => Route::Error(Status::NotFound),
    }
}

/// A complete response: status line, `Content-Type`, `Content-Length`,
/// `Connection: close`, and the body.
pub fn response(status: Status, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        content_type,
        body.len()
    );
    if status == Status::MethodNotAllowed {
        head.push_str("Allow: GET\r\n");
    }
    head.push_str("\r\n");
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The response to a request that is not for the status page.
pub fn error_response(status: Status) -> Vec<u8> {
    let mut body = String::new();
    let _ = writeln!(body, "{} {}", status.code(), status.reason());
    response(status, "text/plain; charset=utf-8", body.as_bytes())
}

/// What the status page shows. Missing parts (a failed call) are shown as unavailable.
#[derive(Clone, Copy)]
pub struct StatusView<'a> {
    pub table: Option<&'a DomainTable>,
    pub stack: Option<&'a StackStats>,
    pub services: &'a ServiceStats,
}

pub fn state_name(state: u8) -> &'static str {
    match state {
        0 => "alive",
        1 => "dead",
        2 => "restarting",
        _ => "unknown",
    }
}

/// Text with `<`, `>`, `&`, `"` and `'` escaped for HTML.
struct Html<'a>(&'a str);

impl core::fmt::Display for Html<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for c in self.0.chars() {
            match c {
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '&' => f.write_str("&amp;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A JSON string literal, quotes included.
struct Json<'a>(&'a str);

impl core::fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if (c as u32) < 0x20 => write!(f, "\\u{:04x}", c as u32)?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// `1h 02m 03s`.
struct Uptime(u64);

impl core::fmt::Display for Uptime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.0 / 1000;
        write!(f, "{}h {:02}m {:02}s", s / 3600, s / 60 % 60, s % 60)
    }
}

/// Bytes as KiB with one decimal, in integers.
struct Kib(u64);

impl core::fmt::Display for Kib {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let tenths = self.0.saturating_mul(10) / 1024;
        write!(f, "{}.{} KiB", tenths / 10, tenths % 10)
    }
}

fn rows(t: &DomainTable) -> &[frond_interface::net::DomainRow] {
    &t.rows[..(t.len as usize).min(TABLE_ROWS)]
}

/// The status page.
pub fn status_html(v: &StatusView<'_>) -> String {
    let mut s = String::with_capacity(4096);
    s.push_str(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Frond status</title>\n\
         <style>body{font-family:monospace;margin:1em}table{border-collapse:collapse}\
         td,th{border:1px solid #aaa;padding:2px 8px;text-align:right}.l{text-align:left}</style>\n\
         </head><body>\n<h1>Frond</h1>\n",
    );
    match v.table {
        Some(t) => {
            let _ = writeln!(s, "<p>Uptime: {} ({} ms)</p>", Uptime(t.uptime_ms), t.uptime_ms);
            let _ = writeln!(s, "<p>Shared heap: {} used of {}</p>", Kib(t.shared_heap_used), Kib(t.shared_heap_size));
            s.push_str(
                "<h2>Domains</h2>\n<table>\n<tr><th>id</th><th class=\"l\">name</th><th>generation</th>\
                 <th class=\"l\">state</th><th>heap used</th><th>heap reserved</th><th>RRefs</th>\
                 <th>RRef bytes</th><th>calls</th><th>crashes</th><th>restarts</th></tr>\n",
            );
            for r in rows(t) {
                let _ = writeln!(
                    s,
                    "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td>\
                     <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    r.id,
                    Html(r.name()),
                    r.generation,
                    state_name(r.state),
                    Kib(r.heap_used),
                    Kib(r.heap_reserved),
                    r.rrefs,
                    r.rref_bytes,
                    r.calls,
                    r.crashes,
                    r.restarts
                );
            }
            s.push_str("</table>\n");
        }
        None => s.push_str("<p>Domain table unavailable.</p>\n"),
    }
    s.push_str("<h2>Network stack</h2>\n");
    match v.stack {
        Some(st) => {
            let _ = writeln!(
                s,
                "<table>\n<tr><th class=\"l\">rx frames</th><td>{}</td></tr>\n\
                 <tr><th class=\"l\">tx frames</th><td>{}</td></tr>\n\
                 <tr><th class=\"l\">NIC errors</th><td>{}</td></tr>\n\
                 <tr><th class=\"l\">sockets</th><td>{}</td></tr>\n\
                 <tr><th class=\"l\">polls</th><td>{}</td></tr>\n</table>",
                st.rx_frames, st.tx_frames, st.nic_errors, st.sockets, st.polls
            );
        }
        None => s.push_str("<p>Stack counters unavailable.</p>\n"),
    }
    let sv = v.services;
    let _ = writeln!(
        s,
        "<h2>Services</h2>\n<table>\n<tr><th class=\"l\">TCP echo connections</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">TCP echo bytes</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">UDP echo datagrams</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">HTTP requests</th><td>{}</td></tr>\n\
         <tr><th class=\"l\">stack restarts seen</th><td>{}</td></tr>\n</table>",
        sv.tcp_conns, sv.tcp_bytes, sv.udp_datagrams, sv.http_requests, sv.stack_restarts_seen
    );
    s.push_str("</body></html>\n");
    s
}

/// The same data as [`status_html`], as one JSON object.
pub fn status_json(v: &StatusView<'_>) -> String {
    let mut s = String::with_capacity(2048);
    s.push('{');
    match v.table {
        Some(t) => {
            let _ = write!(
                s,
                "\"uptime_ms\":{},\"shared_heap\":{{\"used\":{},\"size\":{}}},\"domains\":[",
                t.uptime_ms, t.shared_heap_used, t.shared_heap_size
            );
            for (i, r) in rows(t).iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let _ = write!(
                    s,
                    "{{\"id\":{},\"name\":{},\"generation\":{},\"state\":{},\"heap_used\":{},\
                     \"heap_reserved\":{},\"rrefs\":{},\"rref_bytes\":{},\"calls\":{},\"crashes\":{},\
                     \"restarts\":{}}}",
                    r.id,
                    Json(r.name()),
                    r.generation,
                    Json(state_name(r.state)),
                    r.heap_used,
                    r.heap_reserved,
                    r.rrefs,
                    r.rref_bytes,
                    r.calls,
                    r.crashes,
                    r.restarts
                );
            }
            s.push_str("],");
        }
        None => s.push_str("\"uptime_ms\":null,\"shared_heap\":null,\"domains\":null,"),
    }
    match v.stack {
        Some(st) => {
            let _ = write!(
                s,
                "\"stack\":{{\"rx_frames\":{},\"tx_frames\":{},\"nic_errors\":{},\"sockets\":{},\"polls\":{}}},",
                st.rx_frames, st.tx_frames, st.nic_errors, st.sockets, st.polls
            );
        }
        None => s.push_str("\"stack\":null,"),
    }
    let sv = v.services;
    let _ = write!(
        s,
        "\"services\":{{\"tcp_conns\":{},\"tcp_bytes\":{},\"udp_datagrams\":{},\"http_requests\":{},\
         \"stack_restarts_seen\":{}}}}}",
        sv.tcp_conns, sv.tcp_bytes, sv.udp_datagrams, sv.http_requests, sv.stack_restarts_seen
    );
    s
}
