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
        (
            "    volumes: []\n",
            "4:5: unknown key `volumes`: Compose's `volumes` is `mounts` here",
        ),
        (
            "    environment: []\n",
            "4:5: unknown key `environment`: Compose's `environment` is `env` here",
        ),
        (
            "    stop_grace_period: 5s\n",
            "4:5: unknown key `stop_grace_period`: Compose's `stop_grace_period` is `stop_timeout` here",
        ),
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
fn dedented_service_keys_are_named_as_such() {
    let list = problems("services:\n  web:\n  command: x\n  image: busybox\n  db:\n    command: y\n    depends_on: [web]\n");
    assert_eq!(
        list,
        ["2:3: service web has no keys: `command` (line 3) and the keys after it are at the indentation of the service names; indent them under `web:`"]
    );
}

#[test]
fn restart_policy_and_driver_are_known_words() {
    web_problems(&[(
        "    restart: sometimes\n",
        "4:14: restart: `sometimes` is not one of never, on-failure, always",
    )]);
    assert_eq!(
        service(&web("    restart: never\n")).restart,
        RestartPolicy::Never
    );
    assert_eq!(
        problem("cgroup_driver: v3\nservices: {}\n"),
        "1:16: cgroup_driver: `v3` is not one of auto, v1, v2, did you mean v1?"
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
fn cgroup_parent_may_be_relative_to_the_daemons_cgroup() {
    for parent in ["./", "./services", "./appliance/services"] {
        let config = parse(&format!("cgroup_parent: {parent}\nservices: {{}}\n"))
            .unwrap_or_else(|e| panic!("{parent}: {e}"));
        assert_eq!(config.cgroup_parent, parent);
    }
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
            "cgroup_parent: ./../x\n",
            "1:16: cgroup_parent: `./../x` must be a relative",
        ),
        (
            "cgroup_parent: .//x\n",
            "1:16: cgroup_parent: `.//x` must be a relative",
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
    assert!(
        list[0].ends_with("(in the flow sequence that starts at 2:8)"),
        "{list:?}"
    );
    assert_eq!(
        problem("services:\n  web: {command: x,\n  b: 1\n"),
        "3:3: YAML syntax error: invalid indentation in flow construct (in the flow mapping that starts at 2:8)"
    );
    assert!(problem("services:\n  web:\n    command: x\n   image: 3\n")
        .ends_with("(in the mapping that starts at 2:3)"),);
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
fn devices_are_host_container_and_permissions() {
    let web_service = service(&web(
        "    devices: [/dev/ttyUSB0, \"/dev/i2c-1:/dev/i2c-1:rw\", /dev/kmsg:/dev/log:r]\n    privileged: true\n",
    ));
    let listed: Vec<String> = web_service
        .devices
        .iter()
        .map(|d| {
            format!(
                "{} {} {}",
                d.host.display(),
                d.container.display(),
                d.access
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            "/dev/ttyUSB0 /dev/ttyUSB0 rwm",
            "/dev/i2c-1 /dev/i2c-1 rw",
            "/dev/kmsg /dev/log r"
        ]
    );
    assert!(web_service.privileged);
    assert!(!service(&web("")).privileged);
    web_problems(&[
        (
            "    devices: [/dev/a, dev/b]\n",
            "4:23: devices: host device `dev/b` must be an absolute path",
        ),
        (
            "    devices:\n      - /dev/a:/dev/a:rx\n",
            "5:9: devices: permissions `rx`: use some of r, w, m, each at most once",
        ),
        (
            "    devices: [/dev/a:/srv/a]\n",
            "4:15: devices: `/srv/a`: the device inside the service must be under /dev",
        ),
        (
            "    devices: [/dev/a:/dev/null]\n",
            "4:15: devices: `/dev/null`: /dev/null is the service's own",
        ),
        (
            "    devices: [/dev/a, /dev/b:/dev/a]\n",
            "4:23: devices: `/dev/a` is listed twice inside the service",
        ),
        (
            "    devices: {a: b}\n",
            "4:14: devices: expected a list, found a mapping",
        ),
        (
            "    privileged: yes\n",
            "4:17: privileged: expected true or false, found `yes`",
        ),
    ]);
}

// ---- capabilities, privileged and seccomp ----

#[test]
fn a_service_keeps_dockers_capabilities_and_the_default_filter() {
    let web = service(&web(""));
    assert_eq!(web.capabilities, Capabilities::docker_default());
    assert_eq!(web.capabilities.0, 0xa80425fb);
    assert!(!web.privileged);
    assert_eq!(web.seccomp, Seccomp::Default);
    assert!(web.seccomp_filter.is_some());
}

#[test]
fn cap_add_and_cap_drop_take_names_as_docker_does() {
    let changed = service(&web(
        "    cap_add: [NET_ADMIN, cap_sys_time]\n    cap_drop: [CAP_CHOWN, mknod]\n",
    ));
    assert_eq!(
        changed.capabilities.names(),
        [
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_ADMIN",
            "CAP_NET_RAW",
            "CAP_SYS_CHROOT",
            "CAP_SYS_TIME",
            "CAP_AUDIT_WRITE",
            "CAP_SETFCAP",
        ]
    );
    let none = service(&web("    cap_drop: [ALL]\n    cap_add: [KILL]\n"));
    assert_eq!(none.capabilities.names(), ["CAP_KILL"]);
    let all = service(&web("    cap_add: [all]\n    cap_drop: [SYS_ADMIN]\n"));
    assert!(!all.capabilities.has_named("CAP_SYS_ADMIN"));
    assert!(all.capabilities.has_named("CAP_SYS_MODULE"));
}

#[test]
fn an_unknown_capability_is_named_with_a_suggestion() {
    assert_eq!(
        problem(&web("    cap_add: [NET_ADMN]\n")),
        "4:15: cap_add: unknown capability `NET_ADMN`, did you mean NET_ADMIN?"
    );
    assert_eq!(
        problem(&web("    cap_drop:\n      - CAP_BOGUS_THING\n")),
        "5:9: cap_drop: unknown capability `CAP_BOGUS_THING`"
    );
    assert_eq!(
        problem(&web("    cap_add: {a: 1}\n")),
        "4:14: cap_add: expected a list, found a mapping"
    );
}

#[test]
fn privileged_keeps_everything_and_refuses_what_would_contradict_it() {
    let web_service = service(&web("    privileged: true\n"));
    assert!(web_service.privileged);
    assert_eq!(web_service.capabilities, Capabilities::ALL);
    assert_eq!(web_service.seccomp_filter, None);
    assert_eq!(
        problem(&web("    privileged: true\n    cap_drop: [NET_RAW]\n")),
        "5:5: cap_drop: has no effect with `privileged: true` (every capability, no seccomp filter)"
    );
    assert_eq!(
        problem(&web("    privileged: yes\n")),
        "4:17: privileged: expected true or false, found `yes`"
    );
}

#[test]
fn seccomp_unconfined_has_no_filter() {
    let unconfined = service(&web("    seccomp: unconfined\n"));
    assert_eq!(unconfined.seccomp, Seccomp::Unconfined);
    assert_eq!(unconfined.seccomp_filter, None);
    assert_eq!(
        problem(&web_with_seccomp("unconfimed")),
        "4:14: seccomp: `unconfimed`: no such profile, did you mean unconfined?"
    );
}

fn web_with_seccomp(value: &str) -> String {
    web(&format!("    seccomp: {value}\n"))
}

#[test]
fn a_seccomp_profile_is_read_relative_to_the_file_and_compiled() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(
        dir.path().join("profile.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "not_a_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let config = parse_str(&web_with_seccomp("profile.json"), &file).unwrap();
    let web = &config.services[0];
    assert_eq!(
        web.seccomp,
        Seccomp::Profile(dir.path().join("profile.json"))
    );
    assert!(web.seccomp_filter.is_some());
}

#[test]
fn a_bad_seccomp_profile_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    let bad = |name: &str, json: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, json).unwrap();
        let errors = parse_str(&web_with_seccomp(name), &file).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        let d = &errors.0[0];
        assert_eq!((d.line, d.column), (4, 14));
        let prefix = format!("seccomp: {}: ", path.display());
        d.message
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{}", d.message))
            .to_owned()
    };
    assert_eq!(
        bad("action.json", r#"{"defaultAction": "SCMP_ACT_PERHAPS"}"#),
        "defaultAction: unknown action `SCMP_ACT_PERHAPS`"
    );
    assert_eq!(
        bad(
            "rule.json",
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOPE"}]}"#
        ),
        "syscalls[0]: unknown action `SCMP_ACT_NOPE`"
    );
    assert!(bad("broken.json", "{\"defaultAction\": ").starts_with("not a seccomp profile: "));
    let missing = parse_str(&web_with_seccomp("./missing.json"), &file).unwrap_err();
    assert!(
        missing.0[0]
            .message
            .ends_with("missing.json: No such file or directory"),
        "{missing}"
    );
}

/// A file with networks `front` (default subnet), `back` (10.201.0.0/24,
/// internal) and service `web` whose extra keys are `keys`.
fn networked(keys: &str) -> String {
    format!(
        "networks:\n  front: {{}}\n  back: {{subnet: 10.201.0.0/24, internal: true}}\nservices:\n  web:\n    command: [/bin/true]\n{keys}"
    )
}

#[test]
fn networks_ports_and_dns_are_read() {
    let config = parse(&networked(
        "    networks: [front, back]\n    ports: [\"8080:80\", \"127.0.0.1:8443:443\", \"5353:53/udp\", 9000:9000/tcp]\n    dns: [192.0.2.53, \"2001:db8::53\"]\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let [front, back] = &config.networks[..] else {
        panic!("{:?}", config.networks)
    };
    assert_eq!(front.name, "front");
    assert!(DEFAULT_RANGE.overlaps(&front.subnet) && front.subnet.prefix == 24);
    assert!(!front.internal);
    assert_eq!(back.subnet.to_string(), "10.201.0.0/24");
    assert!(back.internal);
    let web = &config.services[0];
    assert_eq!(web.networks, ["front", "back"]);
    let port = |host_ip: Option<[u8; 4]>, host_port, port, protocol| Port {
        host_ip: host_ip.map(std::net::Ipv4Addr::from),
        host_port,
        port,
        protocol,
    };
    assert_eq!(
        web.ports,
        [
            port(None, 8080, 80, Protocol::Tcp),
            port(Some([127, 0, 0, 1]), 8443, 443, Protocol::Tcp),
            port(None, 5353, 53, Protocol::Udp),
            port(None, 9000, 9000, Protocol::Tcp),
        ]
    );
    assert_eq!(web.dns.len(), 2);
    // The default subnet depends on the name only: the same in every file.
    let again = parse("networks: {front: }\nservices: {}\n").unwrap();
    assert_eq!(again.networks[0].subnet, front.subnet);
    // Without networks, nothing changes.
    assert!(service("services:\n  web: {command: x}\n")
        .networks
        .is_empty());
}

#[test]
fn bad_networks_are_reported_where_they_are_written() {
    let cases = [
        (
            "    networks: [frnot]\n",
            "7:16: networks: unknown network `frnot`, did you mean front?",
        ),
        (
            "    networks: [front]\n    ports: [\"80\"]\n",
            "8:13: ports: `80`: give the host's port too, as HOST_PORT:PORT (e.g. \"8080:80\")",
        ),
        (
            "    networks: [front]\n    ports: [\"8080:80/sctp\"]\n",
            "8:13: ports: `8080:80/sctp`: unknown protocol `sctp` (tcp or udp)",
        ),
        (
            "    networks: [front]\n    ports: [\"70000:80\"]\n",
            "8:13: ports: `70000:80`: port 70000 is out of range (1 to 65535)",
        ),
        (
            "    networks: [front]\n    ports: [\"0:80\"]\n",
            "8:13: ports: `0:80`: port 0 is out of range (1 to 65535)",
        ),
        (
            "    networks: [front]\n    ports: [\"http:80\"]\n",
            "8:13: ports: `http:80`: `http` is not a port number",
        ),
        (
            "    networks: [front]\n    ports: [\"1.2.3:80:80\"]\n",
            "8:13: ports: `1.2.3:80:80`: `1.2.3` is not an IPv4 address",
        ),
        (
            "    networks: [front]\n    ports: [\"8000-8010:80\"]\n",
            "8:13: ports: `8000-8010:80`: port ranges are not supported",
        ),
        (
            "    networks: [front]\n    ports: 8080:80\n",
            "8:12: ports: expected a list such as [\"8080:80\"], found `8080:80`",
        ),
        (
            "    networks: [back]\n    ports: [\"8080:80\"]\n",
            "8:13: ports: the service is only on internal networks, which have no way in or out",
        ),
        (
            "    ports: [\"8080:80\"]\n",
            "7:5: ports: the service joins no network (add `networks`)",
        ),
        (
            "    dns: [192.0.2.1]\n",
            "7:5: dns: the service joins no network (add `networks`)",
        ),
        (
            "    networks: [front]\n    dns: [one.one]\n",
            "8:10: dns: `one.one` is not an IP address",
        ),
        (
            "    namespaces: [pid, mount]\n    networks: [front]\n",
            "8:5: networks: the service shares the host's network (its namespaces leave out net)",
        ),
        (
            "    namespaces: [pid, net]\n    networks: [front]\n",
            "8:5: networks: needs the mount namespace (for /etc/hosts and /etc/resolv.conf)",
        ),
    ];
    for (keys, expected) in cases {
        assert_eq!(problem(&networked(keys)), expected, "with {keys:?}");
    }
    // A port published twice on the host.
    let twice = "networks: {front: {}}\nservices:\n  a: {command: x, networks: [front], ports: [\"80:80\"]}\n  b: {command: x, networks: [front], ports: [\"127.0.0.1:80:8080\"]}\n";
    assert_eq!(
        problem(twice),
        "4:46: ports: host port 80/tcp is already published by service a"
    );
    // `networks: []` is no network: allowed anywhere.
    parse("services:\n  a: {command: x, namespaces: [pid], networks: []}\n").unwrap();
}

#[test]
fn bad_subnets_are_reported_where_they_are_written() {
    let top = |subnets: &str| problem(&format!("networks:\n{subnets}services: {{}}\n"));
    assert_eq!(
        top("  a: {subnet: 10.1.0.0}\n"),
        "2:15: subnet: `10.1.0.0` is not a subnet such as 10.89.1.0/24"
    );
    assert_eq!(
        top("  a: {subnet: 10.1.0.300/24}\n"),
        "2:15: subnet: `10.1.0.300/24` is not a subnet such as 10.89.1.0/24"
    );
    assert_eq!(
        top("  a: {subnet: 10.1.0.0/31}\n"),
        "2:15: subnet: `10.1.0.0/31`: the prefix length must be 1 to 30 (room for the gateway and a service)"
    );
    assert_eq!(
        top("  a: {subnet: 10.1.0.5/24}\n"),
        "2:15: subnet: `10.1.0.5/24` has host bits set: did you mean 10.1.0.0/24?"
    );
    assert_eq!(
        top("  a: {subnet: 10.1.0.0/16}\n  b: {subnet: 10.1.7.0/24}\n"),
        "3:15: subnet: 10.1.7.0/24 overlaps network a (10.1.0.0/16)"
    );
    assert_eq!(
        top("  a: {subnet: 127.1.0.0/16}\n"),
        "2:15: subnet: 127.1.0.0/16 overlaps the reserved range 127.0.0.0/8"
    );
    assert_eq!(
        top("  a: {subnt: 10.1.0.0/24}\n"),
        "2:7: unknown key `subnt`, did you mean subnet?"
    );
    assert_eq!(
        top("  a: {internal: maybe}\n"),
        "2:17: internal: expected true or false, found `maybe`"
    );
    assert_eq!(
        top("  Front: {}\n"),
        "2:3: invalid network name `Front`: use 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit"
    );
    assert_eq!(
        problem("networks: [a]\nservices: {}\n"),
        "1:11: networks: expected a mapping of network names to {subnet, internal}, found a list"
    );
}

#[test]
fn a_subnet_over_the_hosts_own_routes_is_refused() {
    // A route of this host (its network namespace), the default route aside.
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    let route = routes
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let destination = u32::from_str_radix(fields[1], 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(fields[7], 16).ok()?.swap_bytes();
            (mask != 0).then(|| (fields[0].to_string(), destination, mask.count_ones()))
        })
        .next()
        .expect("this test needs a host with a route besides the default one");
    let (link, destination, prefix) = route;
    let subnet = format!("{}/{prefix}", std::net::Ipv4Addr::from(destination));
    let yaml = format!("networks:\n  lan: {{subnet: {subnet}}}\nservices: {{}}\n");
    assert_eq!(
        problem(&yaml),
        format!("2:17: subnet: {subnet} overlaps the host's route to {subnet} (on {link})")
    );
    // A default subnet steers clear of it.
    parse("networks: {a: {}, b: {}, c: {}}\nservices: {}\n").unwrap();
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

#[test]
fn readiness_keys_default_and_read() {
    let plain = service(&web(""));
    assert_eq!(plain.ready, Ready::Started);
    assert_eq!(plain.watchdog, None);
    assert_eq!(plain.ready_timeout, DEFAULT_READY_TIMEOUT);
    let notify = service(&web(
        "    ready: notify\n    watchdog: 10s\n    ready_timeout: 2m\n",
    ));
    assert_eq!(notify.ready, Ready::Notify);
    assert_eq!(notify.watchdog, Some(Duration::from_secs(10)));
    assert_eq!(notify.ready_timeout, Duration::from_secs(120));
}

#[test]
fn readiness_keys_are_checked() {
    assert_eq!(
        problem(&web("    ready: started\n")),
        "4:12: ready: `started` is not notify (without `ready`, a service is ready once it runs)"
    );
    assert_eq!(
        problem(&web("    watchdog: 10s\n")),
        "4:5: watchdog: needs `ready: notify`"
    );
    assert_eq!(
        problem(&web("    ready_timeout: 10s\n")),
        "4:5: ready_timeout: needs `ready: notify`"
    );
    assert_eq!(
        problem(&web("    ready: notify\n    watchdog: 0s\n")),
        "5:15: watchdog: must be longer than 0"
    );
    assert_eq!(
        problem(&web("    ready: notify\n    watchdog: soon\n")),
        "5:15: watchdog: malformed duration `soon`: use a number with ms, s, m or h, e.g. 100ms, 1.5s, 2m"
    );
}

#[test]
fn depends_on_long_form_has_conditions() {
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      db: {condition: service_healthy}\n      prep:\n        condition: service_completed_successfully\n      log:\n  db: {command: x}\n  prep: {command: x}\n  log: {command: x}\n";
    let config = parse(yaml).unwrap_or_else(|e| panic!("{e}"));
    let web = &config.services[0];
    assert_eq!(web.depends_on, ["db", "prep", "log"]);
    assert_eq!(web.condition("db"), Condition::ServiceHealthy);
    assert_eq!(
        web.condition("prep"),
        Condition::ServiceCompletedSuccessfully
    );
    assert_eq!(web.condition("log"), Condition::ServiceStarted);
    // The list form means service_started.
    let list = service("services:\n  web: {command: x, depends_on: [db]}\n  db: {command: x}\n");
    assert_eq!(list.condition("db"), Condition::ServiceStarted);
    let order: Vec<&str> = config
        .start_order()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(order, ["db", "prep", "log", "web"]);
}

#[test]
fn depends_on_long_form_is_checked() {
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      db: {condition: service_ready}\n  db: {command: x}\n";
    assert_eq!(
        problem(yaml),
        "5:23: condition: `service_ready` is not one of service_started, service_healthy, service_completed_successfully, did you mean service_healthy?"
    );
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      db: {conditon: service_healthy}\n  db: {command: x}\n";
    assert!(problem(yaml).starts_with("5:12: "), "{}", problem(yaml));
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      dbb: {condition: service_healthy}\n  db: {command: x}\n";
    assert_eq!(
        problem(yaml),
        "5:7: depends_on: unknown service `dbb`, did you mean db?"
    );
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      db: {condition: service_completed_successfully}\n  db: {command: x, restart: always}\n";
    assert_eq!(
        problem(yaml),
        "5:7: depends_on db: service_completed_successfully waits for db to exit, but it has `restart: always`"
    );
    let yaml = "services:\n  web:\n    command: x\n    depends_on:\n      web: {condition: service_healthy}\n";
    assert_eq!(
        problem(yaml),
        "5:7: depends_on: service web depends on itself"
    );
}

#[test]
fn system_section_is_read() {
    let config = parse(
        "system:\n  hostname: box\n  modules: [/lib/modules/overlay.ko]\n  mounts:\n    - {source: tmpfs, target: /data, type: tmpfs, options: \"defaults,size=1m\"}\n  sysctls:\n    net.ipv4.ip_forward: 1\n  watchdog: {device: /dev/watchdog0, timeout: 10s}\nservices:\n  web:\n    command: [/bin/true]\n    log_console: true\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let system = &config.system;
    assert_eq!(system.hostname.as_deref(), Some("box"));
    assert_eq!(system.modules, [PathBuf::from("/lib/modules/overlay.ko")]);
    assert_eq!(
        system.mounts,
        [SystemMount {
            source: "tmpfs".into(),
            target: "/data".into(),
            fstype: "tmpfs".into(),
            options: "size=1m".into(),
        }]
    );
    assert_eq!(system.sysctls["net.ipv4.ip_forward"], "1");
    let watchdog = system.watchdog.as_ref().expect("a watchdog");
    assert_eq!(watchdog.device, PathBuf::from("/dev/watchdog0"));
    assert_eq!(watchdog.timeout, Duration::from_secs(10));
    assert!(config.services[0].log_console);
}

#[test]
fn system_defaults_are_empty() {
    let config = parse("services:\n  web:\n    command: [/bin/true]\n").unwrap();
    assert_eq!(config.system, System::default());
    assert!(!config.services[0].log_console);
    let config = parse("system:\n  watchdog: {}\nservices: {}\n").unwrap();
    let watchdog = config.system.watchdog.expect("a watchdog");
    assert_eq!(watchdog.device, PathBuf::from(DEFAULT_WATCHDOG_DEVICE));
    assert_eq!(watchdog.timeout, DEFAULT_WATCHDOG_TIMEOUT);
}

#[test]
fn system_errors_have_positions() {
    assert_eq!(
        problem("system:\n  hostnme: box\nservices: {}\n"),
        "2:3: unknown key `hostnme`, did you mean hostname?"
    );
    assert_eq!(
        problem(
            "system:\n  mounts:\n    - {source: proc, target: proc, type: proc}\nservices: {}\n"
        ),
        "3:30: target: `proc` must be an absolute path"
    );
    assert_eq!(
        problem("system:\n  mounts:\n    - {source: x, target: /x}\nservices: {}\n"),
        "3:7: mounts: missing `type`"
    );
    assert_eq!(
        problem("system:\n  sysctls:\n    ../etc/passwd: 1\nservices: {}\n"),
        "3:5: sysctls: invalid name `../etc/passwd`: dotted words such as net.ipv4.ip_forward"
    );
    assert_eq!(
        problem("system:\n  watchdog: {timeout: 1500ms}\nservices: {}\n"),
        "2:23: timeout: whole seconds from 2s to 1h (the kernel counts in seconds)"
    );
    assert_eq!(
        problem(&web("    log_console: yes\n")),
        "4:18: log_console: expected true or false, found `yes`"
    );
}
