//! One test per validation rule, through the public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use config::*;
use nix::sys::signal::Signal;

/// Parses `yaml` as if it were `/etc/appliance/services.yaml`.
fn parse(yaml: &str) -> Result<Config, Errors> {
    parse_str(yaml, Path::new("/etc/appliance/services.yaml"))
}

/// The problems of `yaml` as `LINE:COLUMN: message`.
fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(Errors(list)) => list
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
            .collect(),
    }
}

/// The single problem of `yaml`.
fn problem(yaml: &str) -> String {
    let list = problems(yaml);
    assert_eq!(list.len(), 1, "{list:#?}");
    list.into_iter().next().unwrap_or_default()
}

fn service(yaml: &str) -> Service {
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    config.services.into_iter().next().expect("one service")
}

/// A file with one service `web` whose extra keys are `keys` (indented by 4).
fn web(keys: &str) -> String {
    format!("services:\n  web:\n    command: [/bin/true]\n{keys}")
}

#[test]
fn defaults_apply() {
    let config = parse("services:\n  web:\n    command: [/bin/httpd, -f]\n").unwrap();
    assert_eq!(config.path, PathBuf::from("/etc/appliance/services.yaml"));
    assert_eq!(config.state_dir, PathBuf::from("/run/supervisor"));
    assert_eq!(
        config.images_dir,
        PathBuf::from("/var/lib/supervisor/images")
    );
    assert_eq!(config.cgroup_parent, "supervisor");
    assert_eq!(config.cgroup_driver, CgroupDriver::Auto);
    assert_eq!(config.control_group, None);
    let web = &config.services[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.command, ["/bin/httpd", "-f"]);
    assert_eq!(web.image, None);
    assert!(web.env.is_empty());
    assert_eq!(web.workdir, PathBuf::from("/"));
    assert_eq!(web.user, None);
    assert_eq!(web.hostname, "web");
    assert_eq!(web.namespaces, Namespaces::default());
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.restart_delay, Duration::from_millis(100));
    assert_eq!(web.restart_delay_max, Duration::from_secs(30));
    assert!(web.depends_on.is_empty());
    assert!(web.autostart);
    assert_eq!(web.stop_signal, Signal::SIGTERM);
    assert_eq!(web.stop_timeout, Duration::from_secs(10));
    assert!(!web.readonly_rootfs);
    assert!(!web.persist);
    assert!(web.mounts.is_empty());
    assert_eq!(web.limits, Limits::default());
}

#[test]
fn every_key_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rootfs")).unwrap();
    std::fs::create_dir_all(dir.path().join("www")).unwrap();
    let yaml = r#"
state_dir: state
images_dir: /srv/images
cgroup_parent: appliance/services
cgroup_driver: v2
control_group: wheel
services:
  db:
    command: postgres -D /data
    image: ./rootfs
  web:
    command: ["/bin/httpd", "-f", "-p", 8080]
    image: busybox
    env: {GREETING: hello, PORT: 8080}
    workdir: /www
    user: "1000:100"
    hostname: front
    namespaces: [pid, mount, uts, ipc, net, cgroup, user]
    restart: always
    restart_delay: 1.5s
    restart_delay_max: 2m
    depends_on: [db]
    autostart: false
    stop_signal: SIGINT
    stop_timeout: 1h
    readonly_rootfs: true
    persist: true
    mounts:
      - {source: www, target: /www, readonly: true}
      - {source: /, target: /host}
    limits: {memory: 64M, memory_swap: 128M, cpus: 0.5, pids: 64, io_weight: 100}
"#;
    let config =
        parse_str(yaml, &dir.path().join("services.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path().canonicalize().unwrap();
    assert_eq!(config.state_dir, dir.path().join("state"));
    assert_eq!(config.images_dir, PathBuf::from("/srv/images"));
    assert_eq!(config.cgroup_parent, "appliance/services");
    assert_eq!(config.cgroup_driver, CgroupDriver::V2);
    assert_eq!(config.control_group.as_deref(), Some("wheel"));
    let db = config.service("db").unwrap();
    assert_eq!(db.command, ["/bin/sh", "-c", "postgres -D /data"]);
    assert_eq!(db.image, Some(ImageRef::Path(root.join("rootfs"))));
    let web = config.service("web").unwrap();
    assert_eq!(web.command, ["/bin/httpd", "-f", "-p", "8080"]);
    assert_eq!(web.image, Some(ImageRef::Named("busybox".into())));
    assert_eq!(web.env.get("GREETING").map(String::as_str), Some("hello"));
    assert_eq!(web.env.get("PORT").map(String::as_str), Some("8080"));
    assert_eq!(web.workdir, PathBuf::from("/www"));
    assert_eq!(
        web.user,
        Some(User::Id {
            uid: 1000,
            gid: Some(100)
        })
    );
    assert_eq!(web.hostname, "front");
    let all = Namespaces {
        pid: true,
        mount: true,
        uts: true,
        ipc: true,
        net: true,
        cgroup: true,
        user: true,
    };
    assert_eq!(web.namespaces, all);
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.restart_delay, Duration::from_millis(1500));
    assert_eq!(web.restart_delay_max, Duration::from_secs(120));
    assert_eq!(web.depends_on, ["db"]);
    assert!(!web.autostart);
    assert_eq!(web.stop_signal, Signal::SIGINT);
    assert_eq!(web.stop_timeout, Duration::from_secs(3600));
    assert!(web.readonly_rootfs);
    assert!(web.persist);
    let www = Mount {
        source: root.join("www"),
        target: "/www".into(),
        readonly: true,
    };
    let host = Mount {
        source: "/".into(),
        target: "/host".into(),
        readonly: false,
    };
    assert_eq!(web.mounts, [www, host]);
    let limits = Limits {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        cpus: Some(0.5),
        pids: Some(64),
        io_weight: Some(100),
    };
    assert_eq!(web.limits, limits);
}

/// Each `(keys, problem)`: service `web` with the extra `keys` has exactly `problem`.
fn web_problems(cases: &[(&str, &str)]) {
    for (keys, expected) in cases {
        assert_eq!(problem(&web(keys)), *expected, "with {keys:?}");
    }
}

#[test]
fn unknown_keys_suggest_the_closest() {
    web_problems(&[
        (
            "    comand: x\n",
            "4:5: unknown key `comand`, did you mean command?",
        ),
        ("    volumes: []\n", "4:5: unknown key `volumes`"),
        (
            "    limits: {memroy: 1M}\n",
            "4:14: unknown key `memroy`, did you mean memory?",
        ),
        (
            "    mounts: [{source: /, target: /x, readonyl: true}]\n",
            "4:38: unknown key `readonyl`, did you mean readonly?",
        ),
    ]);
    let top = problem("services: {}\nstate_dri: /x\n");
    assert_eq!(top, "2:1: unknown key `state_dri`, did you mean state_dir?");
}

#[test]
fn command_is_required_and_not_empty() {
    let cases = [
        ("    image: busybox\n", "2:3: service web has no command"),
        ("    command: []\n", "3:14: command: must not be empty"),
        ("    command: ''\n", "3:14: command: must not be empty"),
        (
            "    command: ['']\n",
            "3:15: command: the program must not be empty",
        ),
        (
            "    command: [a, [b]]\n",
            "3:18: command: expected a string, found a list",
        ),
        (
            "    command: {a: b}\n",
            "3:14: command: expected a list of strings or a string, found a mapping",
        ),
    ];
    for (keys, expected) in cases {
        assert_eq!(problem(&format!("services:\n  web:\n{keys}")), expected);
    }
    let shell = service("services:\n  web:\n    command: echo hi\n").command;
    assert_eq!(shell, ["/bin/sh", "-c", "echo hi"]);
}

#[test]
fn service_names_follow_the_pattern() {
    let message = "invalid service name `Web`: use 1 to 63 of a-z, 0-9, _ and -, \
                   starting with a letter or digit";
    assert_eq!(
        problem("services:\n  Web:\n    command: x\n"),
        format!("2:3: {message}")
    );
    let long = "a".repeat(64);
    let yaml = format!("services:\n  {long}:\n    command: x\n");
    assert!(problem(&yaml).contains("invalid service name"));
}

#[test]
fn durations_need_a_unit() {
    web_problems(&[
        (
            "    stop_timeout: 10\n",
            "4:19: stop_timeout: malformed duration `10`: use a number with ms, s, m or h, \
             e.g. 100ms, 1.5s, 2m",
        ),
        (
            "    restart_delay: 0s\n",
            "4:20: restart_delay: must be longer than 0",
        ),
        (
            "    restart_delay: 1m\n",
            "4:5: restart_delay (60s) is longer than restart_delay_max (30s)",
        ),
        (
            "    restart_delay_max: 1s\n    restart_delay: 2s\n",
            "4:5: restart_delay (2s) is longer than restart_delay_max (1s)",
        ),
    ]);
    assert_eq!(
        service(&web("    stop_timeout: 0s\n")).stop_timeout,
        Duration::ZERO
    );
}

#[test]
fn sizes_and_limits_are_in_range() {
    web_problems(&[
        (
            "    limits: {memory: 0}\n",
            "4:22: memory: size `0` must be greater than 0",
        ),
        (
            "    limits: {memory: -5M}\n",
            "4:22: memory: size `-5M` must be greater than 0",
        ),
        (
            "    limits: {cpus: 0}\n",
            "4:20: cpus: `0` must be greater than 0",
        ),
        (
            "    limits: {cpus: 1e300}\n",
            "4:20: cpus: `1e300` is too large",
        ),
        (
            "    limits: {pids: 0}\n",
            "4:20: pids: `0` must be a whole number of at least 1",
        ),
        (
            "    limits: {io_weight: 0}\n",
            "4:25: io_weight: `0` must be a whole number from 1 to 10000",
        ),
        (
            "    limits: {io_weight: 10001}\n",
            "4:25: io_weight: `10001` must be a whole number from 1 to 10000",
        ),
        (
            "    limits: {memory: 64M, memory_swap: 32M}\n",
            "4:40: memory_swap: must be at least memory (it counts memory plus swap)",
        ),
    ]);
    assert!(problem(&web("    limits: {memory: 5X}\n")).contains("malformed size `5X`"));
    let limits = service(&web(
        "    limits: {memory_swap: 1G, io_weight: 10000, pids: 1}\n",
    ))
    .limits;
    assert_eq!(limits.memory_swap, Some(1 << 30));
    assert_eq!(limits.io_weight, Some(10000));
    assert_eq!(limits.pids, Some(1));
}

#[test]
fn signals_by_name_or_number() {
    assert_eq!(
        service(&web("    stop_signal: term\n")).stop_signal,
        Signal::SIGTERM
    );
    assert_eq!(
        service(&web("    stop_signal: 2\n")).stop_signal,
        Signal::SIGINT
    );
    web_problems(&[(
        "    stop_signal: TREM\n",
        "4:18: stop_signal: unknown signal `TREM`, did you mean TERM?",
    )]);
}

#[test]
fn restart_policy_and_driver_are_known_words() {
    web_problems(&[(
        "    restart: sometimes\n",
        "4:14: restart: unknown variant `sometimes`, expected one of `never`, `on-failure`, `always`",
    )]);
    assert_eq!(
        service(&web("    restart: never\n")).restart,
        RestartPolicy::Never
    );
    assert_eq!(
        problem("cgroup_driver: v3\nservices: {}\n"),
        "1:16: cgroup_driver: unknown variant `v3`, expected one of `auto`, `v1`, `v2`"
    );
}

#[test]
fn booleans_are_true_or_false() {
    web_problems(&[
        (
            "    autostart: yes\n",
            "4:16: autostart: expected true or false, found `yes`",
        ),
        (
            "    persist: [true]\n",
            "4:14: persist: expected true or false, found a list",
        ),
    ]);
}

#[test]
fn namespaces_replace_the_default_set() {
    let ns = service(&web("    namespaces: [pid, mount]\n")).namespaces;
    let expected = Namespaces {
        pid: true,
        mount: true,
        uts: false,
        ipc: false,
        net: false,
        cgroup: false,
        user: false,
    };
    assert_eq!(ns, expected);
    web_problems(&[
        (
            "    namespaces: [pid, mount, nett]\n",
            "4:30: namespaces: unknown namespace `nett`, did you mean net? \
             (known: pid, mount, uts, ipc, net, cgroup, user)",
        ),
        (
            "    namespaces: [pid]\n    image: busybox\n",
            "4:5: namespaces: image, mounts and readonly_rootfs need the mount namespace",
        ),
        (
            "    namespaces: [pid, mount]\n    hostname: x\n",
            "4:5: namespaces: hostname needs the uts namespace",
        ),
    ]);
}

#[test]
fn images_are_safe_names_or_existing_directories() {
    let named = service(&web("    image: alpine-3.19\n")).image;
    assert_eq!(named, Some(ImageRef::Named("alpine-3.19".into())));
    assert_eq!(
        service(&web("    image: /\n")).image,
        Some(ImageRef::Path("/".into()))
    );
    assert!(problem(&web("    image: ..\n")).starts_with("4:12: image: invalid image name `..`"));
    assert!(problem(&web("    image: ''\n")).starts_with("4:12: image: invalid image name ``"));
    web_problems(&[
        (
            "    image: ./nope\n",
            "4:12: image: `./nope`: No such file or directory",
        ),
        (
            "    image: /etc/hostname\n",
            "4:12: image: `/etc/hostname` is not a directory",
        ),
    ]);
}

#[test]
fn users_are_ids_or_names() {
    let id = service(&web("    user: 1000\n")).user;
    assert_eq!(
        id,
        Some(User::Id {
            uid: 1000,
            gid: None
        })
    );
    let name = service(&web("    user: nobody\n")).user;
    assert_eq!(name, Some(User::Name("nobody".into())));
    web_problems(&[(
        "    user: '1000:'\n",
        "4:11: user: malformed user `1000:`: use uid, uid:gid or a user name",
    )]);
}

#[test]
fn paths_inside_are_absolute() {
    web_problems(&[
        (
            "    workdir: srv\n",
            "4:14: workdir: `srv` must be an absolute path",
        ),
        (
            "    mounts: [{source: /, target: /a/../../etc}]\n",
            "4:34: target: `/a/../../etc` must not contain `..`",
        ),
        (
            "    mounts: [{source: /, target: /}]\n",
            "4:34: target: cannot mount over the root directory (use image)",
        ),
        (
            "    mounts: [{source: /, target: /x}, {source: /tmp, target: /x/}]\n",
            "4:62: target: `/x/` is mounted twice",
        ),
        (
            "    mounts: [{target: /x}]\n",
            "4:14: mounts: missing `source`",
        ),
        (
            "    mounts: [{source: ./missing, target: /x}]\n",
            "4:23: source: `./missing`: No such file or directory",
        ),
        (
            "    mounts: {source: /, target: /x}\n",
            "4:13: mounts: expected a list of {source, target} mappings, found a mapping",
        ),
    ]);
}

#[test]
fn env_is_a_mapping_of_strings() {
    web_problems(&[
        (
            "    env: [A=b]\n",
            "4:10: env: expected a mapping, found a list",
        ),
        (
            "    env: {A: [b]}\n",
            "4:14: env A: expected a string, found a list",
        ),
        (
            "    env: {'A=B': c}\n",
            "4:11: env: invalid variable name `A=B`",
        ),
        (
            "    env: {A: \"a\\0b\"}\n",
            "4:14: env A: contains a NUL character",
        ),
    ]);
}

#[test]
fn top_level_settings_are_checked() {
    let cases = [
        (
            "cgroup_parent: /abs\n",
            "1:16: cgroup_parent: `/abs` must be a relative",
        ),
        (
            "cgroup_parent: a/../b\n",
            "1:16: cgroup_parent: `a/../b` must be a relative",
        ),
        (
            "control_group: 'a b'\n",
            "1:16: control_group: invalid group name `a b`",
        ),
    ];
    for (line, expected) in cases {
        let found = problem(&format!("{line}services: {{}}\n"));
        assert!(found.starts_with(expected), "{found}");
    }
    assert_eq!(problem("state_dir: /x\n"), "1:1: missing key `services`");
    assert_eq!(
        problem("services: [web]\n"),
        "1:11: services: expected a mapping of service names to services, found a list"
    );
    assert_eq!(parse("services: {}\n").unwrap().services.len(), 0);
}

#[test]
fn dependencies_exist_and_have_no_cycle() {
    let yaml = "services:\n  a:\n    command: x\n    depends_on: [b]\n  b:\n    command: x\n    depends_on: [a, c]\n  c:\n    command: x\n    depends_on: [c, dd]\n  d:\n    command: x\n";
    assert_eq!(
        problems(yaml),
        [
            "4:18: depends_on: dependency cycle: a -> b -> a",
            "10:18: depends_on: service c depends on itself",
            "10:21: depends_on: unknown service `dd`, did you mean d?",
        ]
    );
    let long = "services:\n  a: {command: x, depends_on: c}\n  b: {command: x, depends_on: a}\n  c: {command: x, depends_on: b}\n";
    assert_eq!(
        problem(long),
        "2:31: depends_on: dependency cycle: a -> c -> b -> a"
    );
}

#[test]
fn start_order_puts_dependencies_first_and_keeps_file_order() {
    let yaml = "services:\n  web: {command: x, depends_on: [api, db]}\n  api: {command: x, depends_on: db}\n  log: {command: x}\n  db: {command: x}\n";
    let config = parse(yaml).unwrap();
    let order: Vec<&str> = config
        .start_order()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(order, ["log", "db", "api", "web"]);
    assert_eq!(config.service("api").map(|s| s.name.as_str()), Some("api"));
    assert!(config.service("nope").is_none());
}

#[test]
fn duplicate_keys_are_errors() {
    let yaml = "services:\n  web:\n    command: x\n  web:\n    command: y\n";
    assert_eq!(problem(yaml), "4:3: duplicate key `web` (first at line 2)");
    assert_eq!(
        problem(&web("    command: y\n")),
        "4:5: duplicate key `command` (first at line 3)"
    );
}

#[test]
fn empty_and_non_mapping_files() {
    let empty = "1:1: the file is empty: expected a mapping with a `services` key";
    assert_eq!(problem(""), empty);
    assert_eq!(problem("# only a comment\n"), empty);
    assert_eq!(problem("---\n...\n"), empty.replace("1:1", "2:1"));
    assert_eq!(
        problem("- web\n"),
        "1:1: expected a mapping with a `services` key, found a list"
    );
    assert_eq!(
        problem("hello\n"),
        "1:1: expected a mapping with a `services` key, found `hello`"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let list = problems("services:\n  web: [a\n");
    assert_eq!(list.len(), 1);
    assert!(list[0].starts_with("3:1: YAML syntax error"), "{list:?}");
    assert!(problem("services: {}\n---\nservices: {}\n").contains("a second YAML document"));
    assert_eq!(
        problem("services: !custom {}\n"),
        "1:11: unsupported YAML tag `!custom`"
    );
}

#[test]
fn anchors_aliases_and_merge_keys_work() {
    let yaml = "x-base: &base {command: x, restart: never}\nservices:\n  a:\n    <<: *base\n    restart: always\n";
    let err = problems(yaml);
    assert_eq!(err, ["1:1: unknown key `x-base`"]);
    let yaml =
        "services:\n  a: &a {command: x, restart: never}\n  b:\n    <<: *a\n    restart: always\n";
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.service("b").unwrap().restart, RestartPolicy::Always);
    assert_eq!(config.service("b").unwrap().command, ["/bin/sh", "-c", "x"]);
}

#[test]
fn all_errors_are_reported_in_file_order() {
    let yaml = "services:\n  b:\n    command: x\n    stop_signal: NOPE\n  a:\n    comand: x\n    stop_timeout: 1y\n";
    let list = problems(yaml);
    let positions: Vec<&str> = list
        .iter()
        .map(|l| l.split(' ').next().unwrap_or_default())
        .collect();
    assert_eq!(positions, ["4:18:", "5:3:", "6:5:", "7:19:"]);
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused() {
    let deep = format!("services: {}{}", "[".repeat(200), "]".repeat(200));
    assert!(problem(&deep).contains("nested deeper than 64 levels"));
    // 10 to the 8th nodes once every alias is expanded.
    let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut previous = "a".to_owned();
    for i in 1..8 {
        let refs = vec![format!("*{previous}"); 10].join(", ");
        bomb += &format!("b{i}: &b{i} [{refs}]\n");
        previous = format!("b{i}");
    }
    assert!(problem(&bomb).contains("more than 100000 nodes"));
}

#[test]
fn unreadable_and_non_utf8_files() {
    let missing = load(Path::new("/nonexistent/services.yaml")).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "/nonexistent/services.yaml: cannot read: No such file or directory (os error 2)"
    );
    let err = parse_bytes(b"services:\n  w\xffb: x\n", Path::new("f.yaml")).unwrap_err();
    assert_eq!(err.to_string(), "f.yaml:2:4: not UTF-8 text");
}

#[test]
fn errors_display_one_per_line() {
    let err = parse_str("a: 1\nb: 2\n", Path::new("x.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "x.yaml:1:1: unknown key `a`\nx.yaml:1:1: missing key `services`\nx.yaml:2:1: unknown key `b`"
    );
}

#[test]
fn the_documented_example_is_valid() {
    let doc = include_str!("../../docs/config.md");
    let yaml = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("yaml block");
    // Its paths name an appliance's files, absent here: only that may be reported.
    let list = problems(yaml);
    assert_eq!(list.len(), 2, "{list:#?}");
    assert!(
        list.iter()
            .all(|p| p.ends_with("No such file or directory")),
        "{list:#?}"
    );
}

#[test]
fn a_wrong_value_used_through_aliases_is_reported_once() {
    let yaml = "services:\n  a:\n    command: &cmd [x, {y: z}]\n  b:\n    command: *cmd\n";
    assert_eq!(
        problem(yaml),
        "3:23: command: expected a string, found a mapping"
    );
}

#[test]
fn restart_limit_has_a_count_and_a_window() {
    let web_limit = service(&web("    restart_limit: {count: 5, window: 60s}\n")).restart_limit;
    assert_eq!(
        web_limit,
        Some(RestartLimit {
            count: 5,
            window: Duration::from_secs(60)
        })
    );
    assert_eq!(service(&web("")).restart_limit, None);
    web_problems(&[
        (
            "    restart_limit: {count: 0, window: 60s}\n",
            "4:28: count: `0` must be a whole number from 1 to 4294967295",
        ),
        (
            "    restart_limit: {count: 5, window: 0s}\n",
            "4:39: window: must be longer than 0",
        ),
        (
            "    restart_limit: {count: 5}\n",
            "4:20: restart_limit: `window` is missing",
        ),
        (
            "    restart_limit: {count: 5, window: 1m, windw: 1m}\n",
            "4:43: unknown key `windw`, did you mean window?",
        ),
        (
            "    restart_limit: 5\n",
            "4:20: restart_limit: expected a mapping, found `5`",
        ),
    ]);
}
