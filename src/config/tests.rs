//! Unit tests of the configuration parser and its settings table.

use super::*;

#[test]
fn every_numeric_setting_is_read_by_the_parser_with_its_tabled_default() {
    let defaults = Config::from_lookup(|_| None).expect("the tabled defaults are valid");
    assert_eq!(
        defaults.db_pool_size.to_string(),
        default_of("RTCHAT_DB_POOL_SIZE")
    );
    for setting in SETTINGS {
        if setting.default.parse::<u64>().is_err() {
            continue;
        }
        let err = Config::from_lookup(|k| (k == setting.name).then(|| "bogus".into()))
            .expect_err(setting.name);
        assert_eq!(
            err.variable, setting.name,
            "the parser reads {}",
            setting.name
        );
    }
}

#[test]
fn a_bad_value_names_its_variable() {
    let err =
        Config::from_lookup(|k| (k == "RTCHAT_DB_POOL_SIZE").then(|| "lots".into())).unwrap_err();
    assert_eq!(err.variable, "RTCHAT_DB_POOL_SIZE");
    let err = Config::from_lookup(|k| (k == "RTCHAT_WS_QUEUE").then(|| "0".into())).unwrap_err();
    assert_eq!(err.variable, "RTCHAT_WS_QUEUE");
}

#[test]
fn trusted_proxies_parse_as_cidrs() {
    let config =
        Config::from_lookup(|k| (k == "RTCHAT_TRUSTED_PROXIES").then(|| "10.0.0.0/8, ::1".into()))
            .unwrap();
    assert!(in_network(
        "10.1.2.3".parse().unwrap(),
        config.trusted_proxies[0]
    ));
    assert!(!in_network(
        "11.1.2.3".parse().unwrap(),
        config.trusted_proxies[0]
    ));
    assert!(in_network(
        "::1".parse().unwrap(),
        config.trusted_proxies[1]
    ));
    let err = Config::from_lookup(|k| (k == "RTCHAT_TRUSTED_PROXIES").then(|| "nope".into()))
        .unwrap_err();
    assert_eq!(err.variable, "RTCHAT_TRUSTED_PROXIES");
}

#[test]
fn secrets_never_show_in_debug() {
    let config = Config::from_lookup(|k| match k {
        "JWT_SECRET" => Some("super-secret-value-123".into()),
        "DATABASE_URL" => Some("postgres://u:hunter2@db/x".into()),
        _ => None,
    })
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("super-secret-value-123"));
    assert!(!shown.contains("hunter2"));
}
