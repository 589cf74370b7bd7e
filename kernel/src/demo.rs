//! The demo kinds (`echo`, `client`): an `echo` service domain and a `client` domain whose
//! thread calls it every 100 ms through the proxy the manifest's wiring gives it (a
//! recovery proxy: `echo` is `restart=on-call`). `crash echo` kills the service; the
//! client's next call restarts it, and `domains` shows the new generation while the
//! client's error count stays at zero.

use crate::assembly::{self, Ctx, Entry};
use crate::domain;
use crate::println;
use frond_interface::test::{ClientKind, Echo, EchoKind};
use rref::DomainId;

pub fn construct(e: &Entry, ctx: &mut Ctx<'_>) -> Result<Option<DomainId>, alloc::string::String> {
    match e.kind.as_str() {
        "echo" => Ok(Some(domain::create::<EchoKind>(&e.name, &e.image, || ())?)),
        _ => {
            let Some((echo, r)) = ctx.domain(e.need("echo")?) else { return Ok(None) };
            assembly::link::<dyn Echo>(echo, r)?;
            Ok(Some(domain::create::<ClientKind>(&e.name, &e.image, move || {
                (assembly::link::<dyn Echo>(echo, r).expect("echo exports Echo"),)
            })?))
        }
    }
}

pub fn finish(ctx: &Ctx<'_>) {
    if ctx.domain("client").is_some() {
        println!(
            "demo: domains `echo` and `client` are running (client calls echo every 100 ms).\n\
             demo: try `domains`, then `crash echo`, then `domains` again."
        );
    }
}
