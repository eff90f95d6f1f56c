//! The macros expanded and run for real, against the stand-in runtime in `mock/`.

extern crate self as uringo;

mod mock;
pub use mock::*;

use std::error::Error;

#[uringo_macros::test]
async fn default_worker_threads_are_left_to_the_runtime() {
    assert_eq!(crate::last_build(), Some(None));
    assert_eq!(crate::last_builder(), "mock");
}

#[uringo_macros::test(worker_threads = 3)]
async fn worker_threads_are_passed() {
    assert_eq!(crate::last_build(), Some(Some(3)));
}

#[uringo_macros::test]
async fn body_awaits() {
    crate::yield_via_thread().await;
    let n = std::future::ready(20).await;
    assert_eq!(n + 1, 21);
}

#[uringo_macros::test]
async fn result_with_question_mark() -> Result<(), Box<dyn Error>> {
    let n: u32 = "42".parse()?;
    crate::yield_via_thread().await;
    assert_eq!(n, 42);
    Ok(())
}

#[uringo_macros::test]
#[should_panic(expected = "boom from the body")]
async fn should_panic_is_kept() {
    crate::yield_via_thread().await;
    panic!("boom from the body");
}

/// Doc comments and inner attributes are fine too.
#[uringo_macros::test(crate = "crate::alt", worker_threads = 2)]
async fn crate_path_is_used() {
    #![allow(unused_variables)]
    let unused = 1;
    assert_eq!(crate::last_builder(), "alt");
    assert_eq!(crate::last_build(), Some(Some(2)));
}

#[uringo_macros::test(crate = "::uringo::alt")]
async fn absolute_crate_path() {
    assert_eq!(crate::last_builder(), "alt");
}

// `#[uringo::main]` on a function not named `main`: it blocks on its body when called,
// and may take arguments.
#[uringo_macros::main(worker_threads = 2)]
async fn run(x: u32, s: String) -> u32 {
    crate::yield_via_thread().await;
    x + s.len() as u32 + crate::last_build().unwrap().unwrap() as u32
}

#[uringo_macros::main]
pub(crate) async fn fails() -> std::io::Result<()> {
    Err(std::io::Error::other("nope"))?;
    Ok(())
}

#[test]
fn main_on_a_plain_function() {
    assert_eq!(run(1, "abc".to_string()), 6);
    assert_eq!(fails().unwrap_err().to_string(), "nope");
}

#[test]
fn a_test_fn_is_a_plain_sync_fn() {
    // The expanded test is an ordinary `fn() -> T`, callable like any other.
    let f: fn() = body_awaits;
    f();
    let g: fn() -> Result<(), Box<dyn Error>> = result_with_question_mark;
    g().unwrap();
}

// Expands inside a `macro_rules!`, with arguments passed through as fragments.
macro_rules! runtime_test {
    ($name:ident, $n:expr) => {
        #[uringo_macros::test(worker_threads = $n)]
        async fn $name() {
            assert_eq!(crate::last_build(), Some(Some($n)));
        }
    };
}

runtime_test!(from_macro_rules, 5);

// The body handed over by another macro's caller (other hygiene than the attribute's).
macro_rules! with_body {
    ($name:ident, $body:block) => {
        #[uringo_macros::main]
        async fn $name() -> u32 $body
    };
}

with_body!(body_from_macro_caller, {
    crate::yield_via_thread().await;
    7
});

#[test]
fn body_from_macro_caller_returns_its_value() {
    assert_eq!(body_from_macro_caller(), 7);
}
