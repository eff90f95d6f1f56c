//! The expansion of `#[uringo::main]` and `#[uringo::test]`, over `proc_macro2` tokens so it
//! can be unit-tested without the proc-macro bridge. See the crate docs for the shape.

use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{braced, Attribute, Expr, Ident, Lit, Signature, Token, Visibility};

/// Keys accepted inside `#[uringo::main(...)]` / `#[uringo::test(...)]`, for error messages.
const ACCEPTED_KEYS: &str = "`worker_threads`, `crate`";

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr_name(self) -> &'static str {
        match self {
            Kind::Main => "uringo::main",
            Kind::Test => "uringo::test",
        }
    }
}

/// Expansion of `#[uringo::main(args)] item`.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Main, args, item)
}

/// Expansion of `#[uringo::test(args)] item`.
pub(crate) fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Test, args, item)
}

/// An `async fn` whose body is kept as opaque tokens.
///
/// Parsing only the signature keeps the macro cheap and, more importantly, lets it expand
/// while the body is half-written in an editor: errors in the body are then rustc's, at the
/// user's tokens, instead of one syn error that hides the whole function.
struct FnItem {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    /// `#![...]` at the start of the body; they go on the generated function.
    inner_attrs: Vec<Attribute>,
    /// The body's statements, unparsed.
    body: TokenStream,
    /// Span of the body's braces.
    brace_span: proc_macro2::extra::DelimSpan,
}

impl Parse for FnItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body: TokenStream = content.parse()?;
        Ok(FnItem {
            attrs,
            vis,
            sig,
            inner_attrs,
            body,
            brace_span: brace.span,
        })
    }
}

/// What the attribute's arguments asked for.
struct Config {
    /// `worker_threads = N`, with the span of `N`.
    worker_threads: Option<(usize, Span)>,
    /// Path to the uringo crate; `::uringo` unless `crate = "..."` was given.
    crate_path: TokenStream,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            worker_threads: None,
            crate_path: quote!(::uringo),
        }
    }
}

/// One `key = value` (or bare `key`) inside the attribute's parentheses.
struct Arg {
    key: Ident,
    value: Option<Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // `parse_any` so that the keyword `crate` is accepted as a key.
        let key = Ident::parse_any(input)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Arg { key, value })
    }
}

/// Collects every error so that the user sees all of them in one build.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    fn into_compile_errors(self) -> TokenStream {
        self.0.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}

fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let input: FnItem = match syn::parse2(item.clone()) {
        Ok(input) => input,
        // Not a function we can read: hand the item back untouched next to the error, so
        // that the user gets this one message rather than errors about a missing item.
        Err(error) => {
            let mut out = item;
            out.extend(error.to_compile_error());
            return out;
        }
    };

    let mut errors = Errors::default();
    // The parts of the configuration that are valid are kept even when others are not,
    // so that e.g. a bad `worker_threads` next to `crate = "crate"` does not also produce
    // an unresolved `::uringo`.
    let config = parse_config(args, &mut errors);
    check_signature(kind, &input, &mut errors);
    if kind == Kind::Test {
        check_no_second_test_attr(&input.attrs, &mut errors);
    }

    let mut out = generate(kind, input, &config);
    out.extend(errors.into_compile_errors());
    out
}

fn parse_config(args: TokenStream, errors: &mut Errors) -> Config {
    let mut config = Config::default();
    let args = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args) {
        Ok(args) => args,
        Err(error) => {
            errors.push(error);
            return config;
        }
    };

    let mut seen_worker_threads = false;
    let mut seen_crate = false;
    for Arg { key, value } in args {
        let name = key.unraw().to_string();
        let seen = match name.as_str() {
            "worker_threads" => &mut seen_worker_threads,
            "crate" => &mut seen_crate,
            "flavor" => {
                errors.spanned(
                    &key,
                    format!(
                        "unknown attribute `flavor`: uringo has a single, multi-threaded \
                         runtime; accepted keys are {ACCEPTED_KEYS}"
                    ),
                );
                continue;
            }
            _ => {
                errors.spanned(
                    &key,
                    format!("unknown attribute `{name}`; accepted keys are {ACCEPTED_KEYS}"),
                );
                continue;
            }
        };
        if std::mem::replace(seen, true) {
            errors.spanned(&key, format!("duplicate attribute `{name}`"));
            continue;
        }
        let Some(value) = value else {
            let example = if name == "crate" {
                "crate = \"::uringo\""
            } else {
                "worker_threads = 4"
            };
            errors.spanned(&key, format!("`{name}` needs a value, as in `{example}`"));
            continue;
        };
        match name.as_str() {
            "worker_threads" => match parse_worker_threads(&value) {
                Ok(n) => config.worker_threads = Some(n),
                Err(error) => errors.push(error),
            },
            _ => match parse_crate_path(&value) {
                Ok(path) => config.crate_path = path,
                Err(error) => errors.push(error),
            },
        }
    }
    config
}

/// Looks through the invisible groups and parentheses a `macro_rules!` may wrap around an
/// argument.
fn peel(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(group) => peel(&group.expr),
        Expr::Paren(paren) => peel(&paren.expr),
        other => other,
    }
}

fn parse_worker_threads(value: &Expr) -> syn::Result<(usize, Span)> {
    let not_positive = || {
        syn::Error::new_spanned(
            value,
            "`worker_threads` must be a positive integer literal, as in `worker_threads = 4`",
        )
    };
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Int(int), ..
    }) = peel(value)
    else {
        return Err(not_positive());
    };
    let n: usize = int.base10_parse().map_err(|_| not_positive())?;
    if n == 0 {
        return Err(syn::Error::new_spanned(
            value,
            "`worker_threads` must be at least 1",
        ));
    }
    Ok((n, int.span()))
}

fn parse_crate_path(value: &Expr) -> syn::Result<TokenStream> {
    let Expr::Lit(syn::ExprLit {
        lit: Lit::Str(lit), ..
    }) = peel(value)
    else {
        return Err(syn::Error::new_spanned(
            value,
            "`crate` must be a string literal holding a path, as in `crate = \"::uringo\"`",
        ));
    };
    // `LitStr::parse` gives the path's tokens the literal's span, so a wrong path is
    // reported at the string the user wrote.
    match lit.parse::<syn::Path>() {
        Ok(path) => Ok(path.into_token_stream()),
        Err(_) => Err(syn::Error::new_spanned(
            lit,
            format!(
                "`crate` must be a path, as in `crate = \"::uringo\"`; got {:?}",
                lit.value()
            ),
        )),
    }
}

fn check_signature(kind: Kind, input: &FnItem, errors: &mut Errors) {
    let sig = &input.sig;
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            "the `async` keyword is missing from the function declaration",
        );
    }

    let what = match kind {
        Kind::Main if sig.ident == "main" => "the `main` function".to_string(),
        Kind::Main => format!("a function marked `#[{}]`", kind.attr_name()),
        Kind::Test => "a test function".to_string(),
    };

    let args_forbidden = match kind {
        Kind::Main => sig.ident == "main",
        Kind::Test => true,
    };
    if args_forbidden && !sig.inputs.is_empty() {
        errors.spanned(&sig.inputs, format!("{what} cannot take arguments"));
    }

    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            format!("{what} cannot have generic parameters"),
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.spanned(where_clause, format!("{what} cannot have a `where` clause"));
    }
}

/// `#[test]` next to `#[uringo::test]` would register the test twice (once as the sync
/// wrapper, once more by the second attribute): report it instead.
fn check_no_second_test_attr(attrs: &[Attribute], errors: &mut Errors) {
    for attr in attrs {
        if is_test_attribute(attr) {
            errors.spanned(
                attr,
                "`#[uringo::test]` already adds `#[test]`; remove this second test attribute",
            );
        }
    }
}

/// `#[test]`, `#[core::prelude::v1::test]`, `#[::std::prelude::rust_2021::test]`, ...
fn is_test_attribute(attr: &Attribute) -> bool {
    let path = attr.path();
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test" && path.leading_colon.is_none(),
        [krate, prelude, _edition, test] => {
            (krate == "core" || krate == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

fn generate(kind: Kind, input: FnItem, config: &Config) -> TokenStream {
    let FnItem {
        attrs,
        vis,
        mut sig,
        inner_attrs,
        body,
        brace_span,
    } = input;
    sig.asyncness = None;

    let mut body_group = Group::new(Delimiter::Brace, body);
    body_group.set_span(brace_span.join());

    let crate_path = &config.crate_path;
    let worker_threads = config.worker_threads.map(|(n, span)| {
        let mut lit = Literal::usize_unsuffixed(n);
        lit.set_span(span);
        quote!(.worker_threads(#lit))
    });

    // `runtime.block_on(body)` is located at the body's closing brace, so that a mismatch
    // between what the body produces and the declared return type is reported at the end
    // of the body, next to rustc's "expected because of return type", not on the attribute.
    // It still resolves at the call site, like `let body` and `let runtime`: the body's
    // braces may come from another macro's caller, with other hygiene.
    let end = Span::call_site().located_at(brace_span.close());
    let block_on = quote_spanned!(end=> return runtime.block_on(body););
    let run = quote! {
        #[allow(
            clippy::expect_used,
            clippy::diverging_sub_expression,
            clippy::needless_return
        )]
        {
            let runtime = #crate_path::Builder::new()
                #worker_threads
                .build()
                .expect("failed to build the uringo runtime");
            #block_on
        }
    };

    let test_attr = match kind {
        Kind::Test => Some(quote!(#[::core::prelude::v1::test])),
        Kind::Main => None,
    };

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            let body = async move #body_group;
            #run
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::{LineColumn, TokenTree};

    fn ts(s: &str) -> TokenStream {
        s.parse().expect("test input must tokenize")
    }

    /// `s` without whitespace, so that comparisons ignore how tokens were spaced
    /// (`> >` and `>>`, `# !` and `#!` render differently but mean the same here).
    fn squash(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    /// The output rendered, without whitespace.
    fn rendered(out: &TokenStream) -> String {
        squash(&out.to_string())
    }

    /// The messages and (start, end) locations of every `compile_error!` in `out`.
    fn errors(out: &TokenStream) -> Vec<(String, LineColumn, LineColumn)> {
        let tokens: Vec<TokenTree> = out.clone().into_iter().collect();
        let mut found = Vec::new();
        for (i, tt) in tokens.iter().enumerate() {
            if let TokenTree::Ident(ident) = tt {
                if ident != "compile_error" {
                    continue;
                }
                let TokenTree::Group(group) = &tokens[i + 2] else {
                    panic!("compile_error! without a group in {out}")
                };
                let lit = group.stream().into_iter().next().expect("message");
                let TokenTree::Literal(lit) = lit else {
                    panic!("compile_error! without a literal in {out}")
                };
                let Lit::Str(msg) = Lit::new(lit.clone()) else {
                    panic!("compile_error! message is not a string in {out}")
                };
                found.push((msg.value(), ident.span().start(), lit.span().end()));
            }
        }
        found
    }

    fn messages(out: &TokenStream) -> Vec<String> {
        errors(out).into_iter().map(|(m, _, _)| m).collect()
    }

    /// The output without the `compile_error!`s that follow the item, rendered.
    fn without_errors(out: &TokenStream) -> String {
        let tokens: Vec<TokenTree> = out.clone().into_iter().collect();
        let cut = (0..tokens.len())
            .find(|&i| {
                let text: Vec<String> = tokens[i..].iter().take(6).map(|t| t.to_string()).collect();
                text == [":", ":", "core", ":", ":", "compile_error"]
            })
            .unwrap_or(tokens.len());
        rendered(&tokens[..cut].iter().cloned().collect())
    }

    /// Where `needle` first starts in `src` (line 1-based, column 0-based), as spans report.
    fn loc(src: &str, needle: &str) -> LineColumn {
        let at = src.find(needle).expect("needle in source");
        let before = &src[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.chars().rev().take_while(|&c| c != '\n').count();
        LineColumn { line, column }
    }

    /// Where `needle` first ends in `src`.
    fn loc_end(src: &str, needle: &str) -> LineColumn {
        let start = loc(src, needle);
        let lines: Vec<&str> = needle.split('\n').collect();
        if lines.len() == 1 {
            LineColumn {
                line: start.line,
                column: start.column + needle.chars().count(),
            }
        } else {
            LineColumn {
                line: start.line + lines.len() - 1,
                column: lines.last().unwrap().chars().count(),
            }
        }
    }

    const RUN_ALLOW: &str =
        "#[allow(clippy::expect_used, clippy::diverging_sub_expression, clippy::needless_return)]";

    #[test]
    fn minimal_main() {
        let out = main(ts(""), ts("async fn main() { println!(\"hi\"); }"));
        let expected = format!(
            "fn main() {{
                let body = async move {{ println!(\"hi\"); }};
                {RUN_ALLOW}
                {{
                    let runtime = ::uringo::Builder::new()
                        .build()
                        .expect(\"failed to build the uringo runtime\");
                    return runtime.block_on(body);
                }}
            }}"
        );
        assert_eq!(rendered(&out), squash(&expected));
        assert!(messages(&out).is_empty());
    }

    #[test]
    fn main_with_worker_threads_and_return_type() {
        let out = main(
            ts("worker_threads = 4"),
            ts("pub async fn main() -> std::io::Result<()> { let x = f().await?; Ok(x) }"),
        );
        let expected = format!(
            "pub fn main() -> std::io::Result<()> {{
                let body = async move {{ let x = f().await?; Ok(x) }};
                {RUN_ALLOW}
                {{
                    let runtime = ::uringo::Builder::new()
                        .worker_threads(4)
                        .build()
                        .expect(\"failed to build the uringo runtime\");
                    return runtime.block_on(body);
                }}
            }}"
        );
        assert_eq!(rendered(&out), squash(&expected));
    }

    #[test]
    fn worker_threads_suffix_is_dropped() {
        let out = main(ts("worker_threads = 8usize,"), ts("async fn main() {}"));
        let s = rendered(&out);
        assert!(s.contains(&squash(".worker_threads(8)")), "{s}");
        assert!(messages(&out).is_empty());
    }

    #[test]
    fn crate_path_replaces_uringo() {
        for (arg, path) in [
            ("crate = \"crate\"", "crate"),
            ("crate = \"::my_reexport::uringo\"", "::my_reexport::uringo"),
            ("worker_threads = 2, crate = \"uringo2\"", "uringo2"),
        ] {
            let out = test(ts(arg), ts("async fn t() {}"));
            let s = rendered(&out);
            assert!(
                s.contains(&squash(&format!("let runtime = {path}::Builder::new()"))),
                "{arg}: {s}"
            );
            assert!(!s.contains("letruntime=::uringo::Builder"), "{arg}: {s}");
            assert!(messages(&out).is_empty(), "{arg}: {s}");
        }
    }

    #[test]
    fn test_keeps_attributes_and_return_type() {
        let out = test(
            ts("worker_threads = 2"),
            ts("/// Docs.
                #[should_panic(expected = \"boom\")]
                #[ignore]
                #[cfg_attr(miri, ignore)]
                async fn my_test() -> Result<(), Box<dyn std::error::Error>> {
                    #![allow(unused_variables)]
                    panic!(\"boom\")
                }"),
        );
        let expected = format!(
            "#[::core::prelude::v1::test]
            #[doc = \" Docs.\"]
            #[should_panic(expected = \"boom\")]
            #[ignore]
            #[cfg_attr(miri, ignore)]
            fn my_test() -> Result<(), Box<dyn std::error::Error>> {{
                #![allow(unused_variables)]
                let body = async move {{ panic!(\"boom\") }};
                {RUN_ALLOW}
                {{
                    let runtime = ::uringo::Builder::new()
                        .worker_threads(2)
                        .build()
                        .expect(\"failed to build the uringo runtime\");
                    return runtime.block_on(body);
                }}
            }}"
        );
        assert_eq!(rendered(&out), squash(&expected));
        assert!(messages(&out).is_empty());
    }

    #[test]
    fn main_on_other_fn_keeps_arguments() {
        let out = main(ts(""), ts("async fn run(n: u32) -> u32 { n + 1 }"));
        let s = rendered(&out);
        assert!(s.starts_with(&squash("fn run(n: u32) -> u32 {")), "{s}");
        assert!(
            s.contains(&squash("let body = async move { n + 1 };")),
            "{s}"
        );
        assert!(messages(&out).is_empty(), "{s}");
    }

    #[test]
    fn body_is_not_parsed() {
        // Half-typed code still expands; rustc reports the body's own errors.
        let out = test(ts(""), ts("async fn t() { let x = foo. ; }"));
        assert!(messages(&out).is_empty());
        assert!(rendered(&out).contains(&squash("async move { let x = foo. ; }")));
    }

    #[test]
    fn missing_async() {
        let src = "#[ignore]\nfn my_test() {}";
        let out = test(ts(""), ts(src));
        let errs = errors(&out);
        assert_eq!(
            errs,
            vec![(
                "the `async` keyword is missing from the function declaration".to_string(),
                loc(src, "fn"),
                loc_end(src, "fn"),
            )]
        );
        // Still expanded (with the attributes kept), so nothing else is reported.
        assert!(without_errors(&out).starts_with(&squash(
            "#[::core::prelude::v1::test] #[ignore] fn my_test() { let body = async move {};"
        )));
    }

    #[test]
    fn main_with_arguments() {
        let src = "async fn main(argc: i32, argv: Vec<String>) {}";
        let out = main(ts(""), ts(src));
        assert_eq!(
            errors(&out),
            vec![(
                "the `main` function cannot take arguments".to_string(),
                loc(src, "argc"),
                loc_end(src, "Vec<String>"),
            )]
        );
    }

    #[test]
    fn test_with_arguments() {
        let src = "async fn t(x: u8) {}";
        let out = test(ts(""), ts(src));
        assert_eq!(
            errors(&out),
            vec![(
                "a test function cannot take arguments".to_string(),
                loc(src, "x"),
                loc_end(src, "u8"),
            )]
        );
    }

    #[test]
    fn generics_rejected() {
        let src = "async fn main<T: Send>() {}";
        let out = main(ts(""), ts(src));
        assert_eq!(
            errors(&out),
            vec![(
                "the `main` function cannot have generic parameters".to_string(),
                loc(src, "<"),
                loc_end(src, "Send>"),
            )]
        );

        let src = "async fn t<'a>() {}";
        assert_eq!(
            messages(&test(ts(""), ts(src))),
            vec!["a test function cannot have generic parameters"]
        );

        let src = "async fn t() where u8: Copy {}";
        assert_eq!(
            messages(&test(ts(""), ts(src))),
            vec!["a test function cannot have a `where` clause"]
        );

        let src = "async fn run<T>() {}";
        assert_eq!(
            messages(&main(ts(""), ts(src))),
            vec!["a function marked `#[uringo::main]` cannot have generic parameters"]
        );
    }

    #[test]
    fn unknown_key() {
        let args = "worker_threads = 2, threads = 4";
        let out = main(ts(args), ts("async fn main() {}"));
        assert_eq!(
            errors(&out),
            vec![(
                "unknown attribute `threads`; accepted keys are `worker_threads`, `crate`"
                    .to_string(),
                loc(args, "threads = 4"),
                loc_end(args, ", threads"),
            )]
        );
        // The valid key is still applied.
        assert!(rendered(&out).contains(&squash(".worker_threads(2)")));

        assert_eq!(
            messages(&test(
                ts("flavor = \"current_thread\""),
                ts("async fn t() {}")
            )),
            vec![
                "unknown attribute `flavor`: uringo has a single, multi-threaded runtime; \
                 accepted keys are `worker_threads`, `crate`"
            ]
        );
        assert_eq!(
            messages(&test(ts("start_paused"), ts("async fn t() {}"))),
            vec!["unknown attribute `start_paused`; accepted keys are `worker_threads`, `crate`"]
        );
    }

    #[test]
    fn worker_threads_zero() {
        let args = "worker_threads = 0";
        let out = main(ts(args), ts("async fn main() {}"));
        assert_eq!(
            errors(&out),
            vec![(
                "`worker_threads` must be at least 1".to_string(),
                loc(args, "0"),
                loc_end(args, "0"),
            )]
        );
        // Falls back to the runtime's default.
        assert!(!rendered(&out).contains("worker_threads("));
    }

    #[test]
    fn worker_threads_not_an_integer() {
        const MSG: &str =
            "`worker_threads` must be a positive integer literal, as in `worker_threads = 4`";
        for args in [
            "worker_threads = \"4\"",
            "worker_threads = 4.0",
            "worker_threads = -1",
            "worker_threads = N",
            "worker_threads = 1 + 1",
            "worker_threads = 99999999999999999999999999",
        ] {
            let out = test(ts(args), ts("async fn t() {}"));
            let value = &args["worker_threads = ".len()..];
            assert_eq!(
                errors(&out),
                vec![(MSG.to_string(), loc(args, value), loc_end(args, value))],
                "{args}"
            );
        }
        assert_eq!(
            messages(&test(ts("worker_threads"), ts("async fn t() {}"))),
            vec!["`worker_threads` needs a value, as in `worker_threads = 4`"]
        );
    }

    #[test]
    fn crate_not_a_path() {
        assert_eq!(
            messages(&test(ts("crate = uringo"), ts("async fn t() {}"))),
            vec!["`crate` must be a string literal holding a path, as in `crate = \"::uringo\"`"]
        );
        let out = test(ts("crate = \"not a path\""), ts("async fn t() {}"));
        assert_eq!(
            messages(&out),
            vec!["`crate` must be a path, as in `crate = \"::uringo\"`; got \"not a path\""]
        );
        assert!(rendered(&out).contains(&squash("let runtime = ::uringo::Builder")));
    }

    #[test]
    fn duplicate_keys() {
        let args = "worker_threads = 2, crate = \"a\", worker_threads = 3, crate = \"b\"";
        let out = test(ts(args), ts("async fn t() {}"));
        let second_wt = args.rfind("worker_threads").unwrap();
        let second_crate = args.rfind("crate").unwrap();
        let at = |i: usize| LineColumn { line: 1, column: i };
        assert_eq!(
            errors(&out),
            vec![
                (
                    "duplicate attribute `worker_threads`".to_string(),
                    at(second_wt),
                    at(second_wt + "worker_threads".len()),
                ),
                (
                    "duplicate attribute `crate`".to_string(),
                    at(second_crate),
                    at(second_crate + "crate".len()),
                ),
            ]
        );
        // The first occurrences win.
        assert!(
            rendered(&out).contains(&squash("let runtime = a::Builder::new().worker_threads(2)"))
        );
    }

    #[test]
    fn malformed_arguments() {
        let out = test(ts("worker_threads = 2 3"), ts("async fn t() {}"));
        assert_eq!(messages(&out), vec!["expected `,`"]);
        assert!(rendered(&out).contains(&squash("let runtime = ::uringo::Builder::new().build()")));
    }

    #[test]
    fn every_error_is_reported() {
        let out = test(ts("worker_threads = 0, bogus = 1"), ts("fn t<T>(x: T) {}"));
        assert_eq!(
            messages(&out),
            vec![
                "`worker_threads` must be at least 1",
                "unknown attribute `bogus`; accepted keys are `worker_threads`, `crate`",
                "the `async` keyword is missing from the function declaration",
                "a test function cannot take arguments",
                "a test function cannot have generic parameters",
            ]
        );
    }

    #[test]
    fn second_test_attribute() {
        for attr in [
            "#[test]",
            "#[core::prelude::v1::test]",
            "#[::std::prelude::rust_2021::test]",
        ] {
            let src = format!("{attr}\nasync fn t() {{}}");
            let out = test(ts(""), ts(&src));
            assert_eq!(
                errors(&out),
                vec![(
                    "`#[uringo::test]` already adds `#[test]`; remove this second test attribute"
                        .to_string(),
                    loc(&src, "#"),
                    loc_end(&src, "]"),
                )],
                "{attr}"
            );
        }
        // Attributes that merely mention `test` are fine.
        let out = test(ts(""), ts("#[cfg(test)] #[my::test] async fn t() {}"));
        assert!(messages(&out).is_empty());
    }

    #[test]
    fn unparsable_item_is_returned_with_one_error() {
        let src = "struct NotAFunction;";
        let out = main(ts(""), ts(src));
        assert_eq!(messages(&out), vec!["expected `fn`"]);
        assert_eq!(without_errors(&out), squash(src));

        // A signature still being typed: the item comes back as written.
        let src = "#[ignore] async fn t() -> {}";
        let out = test(ts("worker_threads = 2"), ts(src));
        // syn's own wording, e.g. "expected one of: `for`, parentheses, `fn`, ...".
        let msgs = messages(&out);
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert!(msgs[0].starts_with("expected "), "{msgs:?}");
        assert_eq!(without_errors(&out), squash(src));
    }
}
