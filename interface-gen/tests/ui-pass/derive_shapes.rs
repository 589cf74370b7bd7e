//! `#[derive(Exchangeable)]` on every shape: named, tuple and unit structs, enums (empty
//! and recursive ones too), generics with bounds and where clauses, full paths.

use frond_interface_gen::Exchangeable;
use rref::rpc::assert_exchangeable;
use rref::{RRef, RRefDeque, RRefVec};

#[derive(Exchangeable)]
pub struct Named {
    pub a: u64,
    pub b: [RRef<u32>; 2],
    pub c: (bool, Option<RRefVec<u8>>),
    pub d: rref::RRefDeque<u16, 8>,
}

#[derive(Exchangeable)]
struct Tuple(u8, RRef<Named>);

#[derive(Exchangeable)]
struct Unit;

#[derive(Exchangeable)]
enum Never {}

#[derive(Exchangeable)]
enum Message<T, const N: usize>
where
    T: Copy + rref::Exchangeable,
{
    Empty,
    Value(T),
    Block { data: RRef<[T; N]>, len: usize },
}

/// Recursive through an RRef.
#[derive(Exchangeable)]
enum List {
    Nil,
    Cons(u64, RRef<List>),
}

/// Generic and recursive through `Self`.
#[derive(Exchangeable)]
struct Tree<T: rref::Exchangeable> {
    value: T,
    kids: Option<RRefVec<Tree<T>>>,
    parent: Option<RRef<Self>>,
}

#[derive(Exchangeable)]
struct Wrapper<'a, T: ?Sized + 'a> {
    marker: core::marker::PhantomData<&'a T>,
    value: Result<u32, rref::rpc::RpcError>,
}

/// A public type with a private field type: the bound must not leak it.
#[derive(Exchangeable)]
struct Private(u8);
#[derive(Exchangeable)]
pub struct Public {
    inner: Private,
}

const _: () = {
    assert_exchangeable::<Named>();
    assert_exchangeable::<Tuple>();
    assert_exchangeable::<Unit>();
    assert_exchangeable::<Never>();
    assert_exchangeable::<Message<u8, 4>>();
    assert_exchangeable::<List>();
    assert_exchangeable::<Tree<(u8, RRef<u16>)>>();
    assert_exchangeable::<Wrapper<'static, str>>();
    assert_exchangeable::<Public>();
    assert_exchangeable::<RRefDeque<List, 2>>();
};

fn main() {
    use rref::Exchangeable as _;
    rref::host::HostHeap::install();
    let list = List::Cons(1, RRef::new(List::Cons(2, RRef::new(List::Nil))));
    let to = rref::DomainId(9);
    // SAFETY: the test plays the proxy runtime.
    list.move_to(to, unsafe { rref::MoveToken::new(rref::DomainId::KERNEL) });
    if let List::Cons(_, next) = &list {
        assert_eq!(next.owner(), to);
        if let List::Cons(_, last) = &**next {
            assert_eq!(last.owner(), to);
        }
    }
}
