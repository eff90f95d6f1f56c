//! # uringo-macros: `#[uringo::main]` and `#[uringo::test]`
//!
//! Rust has no async `main` and no async `#[test]`: something has to build a runtime and
//! drive the future to completion on the thread the harness gave us. These two attribute
//! macros write that boilerplate. They are re-exported by the `uringo` crate as
//! `uringo::main` and `uringo::test` and mirror tokio's macros of the same names, so code
//! moves between the two runtimes by changing one path.
//!
//! ## What they expand to
//!
//! ```text
//! #[uringo::main(worker_threads = 4)]
//! async fn main() -> std::io::Result<()> { BODY }
//! ```
//!
//! becomes
//!
//! ```text
//! fn main() -> std::io::Result<()> {
//!     let body = async move { BODY };
//!     #[allow(clippy::expect_used, clippy::diverging_sub_expression, clippy::needless_return)]
//!     {
//!         let runtime = ::uringo::Builder::new()
//!             .worker_threads(4)
//!             .build()
//!             .expect("failed to build the uringo runtime");
//!         return runtime.block_on(body);
//!     }
//! }
//! ```
//!
//! `#[uringo::test]` expands the same way and puts `#[::core::prelude::v1::test]` in front
//! of the attributes the user wrote (`#[should_panic]`, `#[ignore]`, doc comments, lints),
//! which are kept in order on the generated function.
//!
//! Why it has this shape:
//!
//! - **The body is wrapped, not rewritten.** The statements go into an `async move` block
//!   exactly as written, with the user's braces and spans, so every error and lint inside
//!   the body points at the user's code. The body is not even parsed: the macro parses the
//!   signature and takes the body as opaque tokens, so a half-typed body in an editor still
//!   expands and rust-analyzer keeps completing inside it. Inner attributes (`#![...]`) move
//!   to the generated function, where they are allowed.
//! - **The return type is kept.** `block_on` returns the future's output, and the async
//!   block's output is inferred from the function's declared return type, so
//!   `-> io::Result<()>` with `?` inside the body works as it does in a sync `main`. The
//!   `block_on` call is located at the body's closing brace, so a body that produces the
//!   wrong type is reported there, as rustc reports a sync function, not on the attribute.
//! - **`worker_threads` is emitted only when given**, as an unsuffixed literal, so the
//!   default (one worker per available core) stays the runtime's decision, made in one place.
//! - **The runtime call sits in an `#[allow]`-ed block after the body**, not around it: the
//!   `expect` on `build()` is ours and should not trip a user's `clippy::expect_used`, while
//!   the user's own code stays under the user's lints.
//! - **`crate = "path"`** replaces `::uringo`, for the `uringo` crate's own tests
//!   (`crate = "crate"`) and for crates that re-export uringo under another name.
//!
//! ## Errors
//!
//! Mistakes are reported with `compile_error!` at the offending tokens: a missing `async`,
//! arguments on `main` or on a test, generic parameters, unknown keys (the message lists the
//! accepted ones), duplicate keys, a `worker_threads` that is not a positive integer literal,
//! a second test attribute (the test would run twice). All mistakes are reported at once.
//! Even then the macro still expands the function with whatever configuration was valid,
//! so the user sees the macro's error and not a cascade after it (`main` function not
//! found, `::uringo` unresolved, ...). Arguments or generics on `main` are the exception:
//! rustc repeats those in its own words (E0580, E0131), as it does with tokio.
//! If the item cannot be parsed as a function at all, the original tokens are emitted
//! unchanged next to the error, as tokio does.
//!
//! The expansion is written over `proc_macro2::TokenStream` (`entry.rs`), so it is tested as
//! plain functions without the compiler's proc-macro bridge; `tests/` checks the expansion
//! end to end against a small stand-in runtime.

use proc_macro::TokenStream;

mod entry;

/// Marks an `async fn` as the program's entry point, run on a uringo runtime.
///
/// The function body becomes the future given to `Runtime::block_on`; the function keeps
/// its name, visibility and return type.
///
/// ```ignore
/// #[uringo::main]
/// async fn main() {
///     println!("hello from a uringo worker");
/// }
///
/// #[uringo::main(worker_threads = 4)]
/// async fn main() -> std::io::Result<()> {
///     let listener = uringo::net::TcpListener::bind("127.0.0.1:8080")?;
///     Ok(())
/// }
/// ```
///
/// The second one expands to:
///
/// ```text
/// fn main() -> std::io::Result<()> {
///     let body = async move { /* the statements above */ };
///     {
///         let runtime = ::uringo::Builder::new().worker_threads(4).build()
///             .expect("failed to build the uringo runtime");
///         return runtime.block_on(body);
///     }
/// }
/// ```
///
/// # Keys
///
/// - `worker_threads = N`: number of worker threads, a positive integer literal. Without
///   it the runtime picks its default (one worker per available core).
/// - `crate = "path"`: path of the uringo crate, `::uringo` by default; for example
///   `crate = "crate"` inside uringo itself, or `crate = "::my_reexport::uringo"`.
///
/// The attribute may also be put on an `async fn` not named `main`, which then builds a
/// runtime and blocks on its body each time it is called; such a function may take
/// arguments (they are moved into the body). A function named `main` may not.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::main(args.into(), item.into()).into()
}

/// Marks an `async fn` as a test, run on a fresh uringo runtime.
///
/// Adds `#[::core::prelude::v1::test]` and keeps every other attribute the function has,
/// so `#[should_panic]`, `#[ignore]` and doc comments work as on a plain test. Do not add
/// `#[test]` yourself: the macro reports it, since the test would be registered twice.
///
/// ```ignore
/// #[uringo::test]
/// async fn accepts_a_connection() {
///     /* ... */
/// }
///
/// #[uringo::test(worker_threads = 2)]
/// #[should_panic(expected = "boom")]
/// async fn panics() {
///     panic!("boom");
/// }
///
/// #[uringo::test(crate = "crate")] // inside the uringo crate itself
/// async fn internal() -> Result<(), Box<dyn std::error::Error>> {
///     Ok(())
/// }
/// ```
///
/// The second one expands to:
///
/// ```text
/// #[::core::prelude::v1::test]
/// #[should_panic(expected = "boom")]
/// fn panics() {
///     let body = async move { panic!("boom"); };
///     {
///         let runtime = ::uringo::Builder::new().worker_threads(2).build()
///             .expect("failed to build the uringo runtime");
///         return runtime.block_on(body);
///     }
/// }
/// ```
///
/// # Keys
///
/// The same as [`macro@main`]: `worker_threads = N` (default: the runtime's default) and
/// `crate = "path"` (default: `::uringo`). A test function may not take arguments.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::test(args.into(), item.into()).into()
}
