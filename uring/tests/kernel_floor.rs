//! The Linux 6.1 floor: a kernel without one of the features the design needs is
//! refused at `Ring::new` with an error naming the feature, the running kernel and the
//! minimum; newer features are probed and reported. This machine's kernel has them all,
//! so each is made to look missing with `RingBuilder::pretend_missing` (a test-only
//! switch, see the crate docs), which goes through the same checks as a real refusal.

use uringo_uring::op::Nop;
use uringo_uring::{KernelFeature, Ring, UnavailableError, MINIMUM_KERNEL};

fn running_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap()
        .trim()
        .to_string()
}

/// `major.minor` of a release string such as `6.18.44-fc` or `6.1`.
fn version(release: &str) -> (u32, u32) {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (next(), next())
}

#[test]
fn a_missing_required_feature_is_named_with_the_kernel_and_the_minimum() {
    let release = running_release();
    let required: Vec<_> = KernelFeature::ALL
        .into_iter()
        .filter(|f| f.is_required())
        .collect();
    assert_eq!(required.len(), 13, "the floor's features: {required:?}");
    for feature in required {
        let err = Ring::builder()
            .pretend_missing(feature)
            .build()
            .expect_err("a kernel without a required feature is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported, "{feature:?}");
        let why = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<UnavailableError>())
            .expect("the error carries an UnavailableError");
        assert_eq!(why.missing_feature(), Some(feature));
        assert_eq!(why.errno(), libc::EINVAL);
        let text = err.to_string();
        for needle in [
            feature.name(),
            feature.since(),
            release.as_str(),
            &format!(">= {MINIMUM_KERNEL}"),
        ] {
            assert!(
                text.contains(needle),
                "{feature:?}: no {needle:?} in: {text}"
            );
        }
    }
}

#[test]
fn a_missing_optional_feature_reads_as_absent_and_the_ring_still_works() {
    let optional: Vec<_> = KernelFeature::ALL
        .into_iter()
        .filter(|f| !f.is_required())
        .collect();
    assert_eq!(optional.len(), 4);
    for feature in optional {
        let ring = Ring::builder().pretend_missing(feature).build().unwrap();
        assert!(!ring.features().has(feature), "{feature:?} forced off");
        for other in KernelFeature::ALL.into_iter().filter(|&f| f != feature) {
            assert_eq!(
                ring.features().has(other),
                Ring::new().unwrap().features().has(other),
                "forcing {feature:?} off changed {other:?}"
            );
        }
        assert!(ring.block_on(async { Nop::new().await }).is_ok());
    }
}

#[test]
fn probes_find_every_feature_this_kernel_release_has() {
    // Mainline releases add features and never remove them (distributions may backport
    // more), so a kernel at or past a feature's release must report it.
    let running = version(&running_release());
    let ring = Ring::new().unwrap();
    eprintln!("Linux {running:?}: {}", ring.features());
    for feature in KernelFeature::ALL {
        if running >= version(feature.since()) {
            assert!(ring.features().has(feature), "{feature} not found");
        }
    }
}
