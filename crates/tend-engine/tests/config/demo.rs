//! The embedded demo parses, validates and says what the demo promises.

use std::path::Path;
use std::time::Duration;
use tend_engine::config::{self, Comparison, Profile, RuleCondition, SourceConfig, TEND_EXE};

#[test]
fn demo_parses_and_validates() {
    let demo = config::demo();
    assert_eq!(demo.origin, config::DEMO_ORIGIN);
    assert_eq!(demo.pools.len(), 1);
    let pool = &demo.pools[0];
    assert_eq!(pool.name, "demo");
    assert_eq!(pool.profile, Profile::Intensive);
    assert_eq!(pool.effective_interval(), Some(Duration::from_secs(1)));
    let SourceConfig::Spawn(spawn) = &pool.source else { panic!("{:?}", pool.source) };
    assert_eq!(spawn.size, 3);
    assert_eq!(spawn.command[0], TEND_EXE);
    assert_eq!(pool.recycle.memory_mb, Some(80));
    let rule = &pool.rules[0];
    assert_eq!(
        rule.condition,
        RuleCondition::Threshold {
            metric: "memory_mb".into(),
            cmp: Comparison::Above,
            fire: 60.0,
            clear: Some(50.0)
        }
    );
    assert_eq!(rule.for_, Duration::from_secs(3));
    // The default config also survives the environment (no overrides).
    let mut with_env = demo.clone();
    with_env.apply_env(|_| None).unwrap();
    assert_eq!(with_env, demo);
}

#[test]
fn demo_leaks_only_in_slot_two() {
    let demo = config::demo();
    let SourceConfig::Spawn(spawn) = &demo.pools[0].source else { panic!() };
    let exe = Path::new("/usr/bin/tend");
    for slot in 0..3 {
        let argv: Vec<String> =
            spawn.argv_for_slot(exe, slot).into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(argv[0], "/usr/bin/tend");
        assert_eq!(argv[1], "demo-worker");
        let at = argv.iter().position(|a| a == "--slot").unwrap();
        assert_eq!(argv[at + 1], slot.to_string());
        let leak = argv.iter().position(|a| a == "--leak-if-slot").unwrap();
        assert_eq!(argv[leak + 1], "2");
    }
}
