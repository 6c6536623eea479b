//! How `COMMAND` describes the container commands (XGROUP, XINFO, CLIENT, CONFIG, COMMAND,
//! FUNCTION, CLUSTER, …) and their subcommands, with Redis 7.0's flags, categories, tips and key specs.
//! Each container's own file runs the subcommands.

use super::describe::{About, Group, KeySpec, Subcommand};

const STREAM: &[&str] = &["@stream"];
const CONNECTION: &[&str] = &["@connection"];
const SCRIPTING: &[&str] = &["@scripting"];
const HELP_FLAGS: &[&str] = &["loading", "stale"];
const GROUP_KEY_INSERT: &[KeySpec] = &[KeySpec::at(2, &["RW", "insert"])];
const GROUP_KEY_UPDATE: &[KeySpec] = &[KeySpec::at(2, &["RW", "update"])];
/// The dead-letter stream a group's policy names is a key the group writes to: ACL key
/// permissions apply to it, and in a cluster it must hash to the group's slot (`-CROSSSLOT`
/// otherwise), so that dead-lettering never leaves the group's shard.
const DEAD_LETTER_NOTE: &str = "The dead-letter stream, written when an entry exhausts MAXDELIVER.";
const GROUP_CREATE_KEYS: &[KeySpec] = &[
    KeySpec::at(2, &["RW", "insert"]),
    KeySpec::after_keyword("DEADLETTER", 5, &["RW", "insert"]).noted(DEAD_LETTER_NOTE),
];
const GROUP_SETPOLICY_KEYS: &[KeySpec] = &[
    KeySpec::at(2, &["RW", "update"]),
    KeySpec::after_keyword("DEADLETTER", 4, &["RW", "insert"]).noted(DEAD_LETTER_NOTE),
];
const GROUP_KEY_DELETE: &[KeySpec] = &[KeySpec::at(2, &["RW", "delete"])];
const GROUP_KEY_READ: &[KeySpec] = &[KeySpec::at(2, &["RO", "access"])];

/// A container's description: no flags or keys of its own, only its subcommands'.
const fn container(
    group: Group,
    since: &'static str,
    summary: &'static str,
    subcommands: &'static [Subcommand],
) -> About {
    About {
        flags: Some(&[]),
        subcommands,
        ..About::new(group, since, summary)
    }
}

const fn sub(
    name: &'static str,
    arity: i32,
    flags: &'static [&'static str],
    first_key: i32,
    about: About,
) -> Subcommand {
    Subcommand {
        name,
        arity,
        flags,
        first_key,
        about,
    }
}

const fn described(
    group: Group,
    categories: &'static [&'static str],
    since: &'static str,
    summary: &'static str,
) -> About {
    About {
        categories,
        ..About::new(group, since, summary)
    }
}

const fn stream(since: &'static str, summary: &'static str, keys: &'static [KeySpec]) -> About {
    About {
        key_specs: keys,
        ..described(Group::Stream, STREAM, since, summary)
    }
}

pub(super) const XGROUP: About = container(
    Group::Stream,
    "5.0.0",
    "Manages consumer groups.",
    &[
        sub(
            "xgroup|create",
            -5,
            &["write", "denyoom", "movablekeys"],
            2,
            stream("5.0.0", "Creates a consumer group.", GROUP_CREATE_KEYS),
        ),
        sub(
            "xgroup|createconsumer",
            5,
            &["write", "denyoom"],
            2,
            stream("6.2.0", "Creates a consumer in a group.", GROUP_KEY_INSERT),
        ),
        sub(
            "xgroup|delconsumer",
            5,
            &["write"],
            2,
            stream(
                "5.0.0",
                "Removes a consumer from a group.",
                GROUP_KEY_DELETE,
            ),
        ),
        sub(
            "xgroup|destroy",
            4,
            &["write"],
            2,
            stream("5.0.0", "Removes a consumer group.", GROUP_KEY_DELETE),
        ),
        sub(
            "xgroup|help",
            2,
            HELP_FLAGS,
            0,
            stream("5.0.0", "Lists the subcommands of XGROUP.", &[]),
        ),
        sub(
            "xgroup|setid",
            -5,
            &["write"],
            2,
            stream(
                "5.0.0",
                "Moves a group's last delivered ID.",
                GROUP_KEY_UPDATE,
            ),
        ),
        sub(
            "xgroup|setpolicy",
            -4,
            &["write", "movablekeys"],
            2,
            stream(
                "5.0.0",
                "Sets a group's redelivery, dead-letter and pending limits.",
                GROUP_SETPOLICY_KEYS,
            ),
        ),
    ],
);

pub(super) const XINFO: About = container(
    Group::Stream,
    "5.0.0",
    "Describes streams, their groups and consumers.",
    &[
        sub(
            "xinfo|consumers",
            4,
            &["readonly"],
            2,
            About {
                tips: &["nondeterministic_output"],
                ..stream("5.0.0", "Lists the consumers of a group.", GROUP_KEY_READ)
            },
        ),
        sub(
            "xinfo|groups",
            3,
            &["readonly"],
            2,
            stream("5.0.0", "Lists the groups of a stream.", GROUP_KEY_READ),
        ),
        sub(
            "xinfo|help",
            2,
            HELP_FLAGS,
            0,
            stream("5.0.0", "Lists the subcommands of XINFO.", &[]),
        ),
        sub(
            "xinfo|stream",
            -3,
            &["readonly"],
            2,
            stream("5.0.0", "Describes a stream.", GROUP_KEY_READ),
        ),
    ],
);

const CLIENT_FLAGS: &[&str] = &["noscript", "loading", "stale"];
const CLIENT_ADMIN_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];

const fn client(since: &'static str, summary: &'static str) -> About {
    described(Group::Connection, CONNECTION, since, summary)
}

pub(super) const CLIENT: About = container(
    Group::Connection,
    "2.4.0",
    "Manages client connections.",
    &[
        sub(
            "client|getname",
            2,
            CLIENT_FLAGS,
            0,
            client("2.6.9", "Returns the connection's name."),
        ),
        sub(
            "client|help",
            2,
            HELP_FLAGS,
            0,
            client("5.0.0", "Lists the subcommands of CLIENT."),
        ),
        sub(
            "client|id",
            2,
            CLIENT_FLAGS,
            0,
            client("5.0.0", "Returns the connection's ID."),
        ),
        sub(
            "client|info",
            2,
            CLIENT_FLAGS,
            0,
            About {
                tips: &["nondeterministic_output"],
                ..client("6.2.0", "Describes this connection.")
            },
        ),
        sub(
            "client|kill",
            -3,
            CLIENT_ADMIN_FLAGS,
            0,
            client("2.4.0", "Closes a client's connection."),
        ),
        sub(
            "client|list",
            -2,
            CLIENT_ADMIN_FLAGS,
            0,
            About {
                tips: &["nondeterministic_output"],
                ..client("2.4.0", "Lists the client connections.")
            },
        ),
        sub(
            "client|setinfo",
            4,
            CLIENT_FLAGS,
            0,
            client("7.2.0", "Records the client library's name or version."),
        ),
        sub(
            "client|setname",
            3,
            CLIENT_FLAGS,
            0,
            client("2.6.9", "Names the connection."),
        ),
    ],
);

const CONFIG_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];

const fn config(since: &'static str, summary: &'static str) -> About {
    described(Group::Server, &[], since, summary)
}

pub(super) const CONFIG: About = container(
    Group::Server,
    "2.0.0",
    "Reads and changes the server's configuration.",
    &[
        sub(
            "config|get",
            -3,
            CONFIG_FLAGS,
            0,
            config("2.0.0", "Returns configuration parameters."),
        ),
        sub(
            "config|help",
            2,
            HELP_FLAGS,
            0,
            config("5.0.0", "Lists the subcommands of CONFIG."),
        ),
        sub(
            "config|resetstat",
            2,
            CONFIG_FLAGS,
            0,
            config("2.0.0", "Resets the server's statistics."),
        ),
        sub(
            "config|rewrite",
            2,
            CONFIG_FLAGS,
            0,
            config(
                "2.8.0",
                "Writes the settings in force to the configuration file.",
            ),
        ),
        sub(
            "config|set",
            -4,
            CONFIG_FLAGS,
            0,
            About {
                tips: &["request_policy:all_nodes", "response_policy:all_succeeded"],
                ..config("2.0.0", "Changes configuration parameters.")
            },
        ),
    ],
);

const fn introspection(since: &'static str, summary: &'static str) -> About {
    described(Group::Server, CONNECTION, since, summary)
}

const UNORDERED: &[&str] = &["nondeterministic_output_order"];

pub(super) const COMMAND: About = About {
    flags: None,
    categories: CONNECTION,
    tips: UNORDERED,
    ..container(
        Group::Server,
        "2.8.13",
        "Describes the server's commands.",
        &[
            sub(
                "command|count",
                2,
                HELP_FLAGS,
                0,
                introspection("2.8.13", "Counts the server's commands."),
            ),
            sub(
                "command|docs",
                -2,
                HELP_FLAGS,
                0,
                About {
                    tips: UNORDERED,
                    ..introspection("7.0.0", "Documents commands.")
                },
            ),
            sub(
                "command|getkeys",
                -4,
                HELP_FLAGS,
                0,
                introspection("2.8.13", "Finds the keys of a call."),
            ),
            sub(
                "command|getkeysandflags",
                -4,
                HELP_FLAGS,
                0,
                introspection("7.0.0", "Finds the keys of a call, with their flags."),
            ),
            sub(
                "command|help",
                2,
                HELP_FLAGS,
                0,
                introspection("5.0.0", "Lists the subcommands of COMMAND."),
            ),
            sub(
                "command|info",
                -2,
                HELP_FLAGS,
                0,
                About {
                    tips: UNORDERED,
                    ..introspection("2.8.13", "Describes commands.")
                },
            ),
            sub(
                "command|list",
                -2,
                HELP_FLAGS,
                0,
                About {
                    tips: UNORDERED,
                    ..introspection("7.0.0", "Lists the commands' names.")
                },
            ),
        ],
    )
};

pub(super) const FUNCTION: About = container(
    Group::Scripting,
    "7.0.0",
    "Manages functions (weir has none).",
    &[sub(
        "function|flush",
        -2,
        &["write", "noscript"],
        0,
        About {
            tips: &["request_policy:all_shards", "response_policy:all_succeeded"],
            ..described(
                Group::Scripting,
                SCRIPTING,
                "7.0.0",
                "Deletes every function: there are none.",
            )
        },
    )],
);

const ACL_FLAGS: &[&str] = &["noscript", "loading", "stale"];
const ACL_ADMIN_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];

const fn acl(since: &'static str, summary: &'static str) -> About {
    About::new(Group::Server, since, summary)
}

pub(super) const ACL: About = container(
    Group::Server,
    "6.0.0",
    "Manages users and their permissions.",
    &[
        sub(
            "acl|cat",
            -2,
            ACL_FLAGS,
            0,
            acl(
                "6.0.0",
                "Lists the ACL categories, or a category's commands.",
            ),
        ),
        sub(
            "acl|deluser",
            -3,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Deletes users."),
        ),
        sub(
            "acl|dryrun",
            -4,
            ACL_ADMIN_FLAGS,
            0,
            acl(
                "7.0.0",
                "Says whether a user may run a command, without running it.",
            ),
        ),
        sub(
            "acl|getuser",
            3,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Describes a user's rules."),
        ),
        sub(
            "acl|help",
            2,
            HELP_FLAGS,
            0,
            acl("6.0.0", "Lists the subcommands of ACL."),
        ),
        sub(
            "acl|list",
            2,
            ACL_ADMIN_FLAGS,
            0,
            acl(
                "6.0.0",
                "Lists every user's rules, as the ACL file has them.",
            ),
        ),
        sub(
            "acl|load",
            2,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Reads the users from the ACL file again."),
        ),
        sub(
            "acl|log",
            -2,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Lists recent denials and failed authentications."),
        ),
        sub(
            "acl|save",
            2,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Writes the users to the ACL file."),
        ),
        sub(
            "acl|setuser",
            -3,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Creates a user or changes its rules."),
        ),
        sub(
            "acl|users",
            2,
            ACL_ADMIN_FLAGS,
            0,
            acl("6.0.0", "Lists the users' names."),
        ),
        sub(
            "acl|whoami",
            2,
            ACL_FLAGS,
            0,
            acl("6.0.0", "Returns the connection's user."),
        ),
    ],
);

const MONITOR_FLAGS: &[&str] = &["admin", "loading", "stale"];
const LATENCY_FLAGS: &[&str] = &["admin", "noscript", "loading", "stale"];
const ALL_NODES_SPECIAL: &[&str] = &[
    "nondeterministic_output",
    "request_policy:all_nodes",
    "response_policy:special",
];
const ALL_NODES_SUCCEEDED: &[&str] = &["request_policy:all_nodes", "response_policy:all_succeeded"];

const fn server_sub(
    since: &'static str,
    summary: &'static str,
    tips: &'static [&'static str],
) -> About {
    About {
        tips,
        ..described(Group::Server, &[], since, summary)
    }
}

/// Listed in the order Redis 7.0's `COMMAND INFO slowlog` lists them.
pub(super) const SLOWLOG: About = container(
    Group::Server,
    "2.2.12",
    "Shows the commands that ran longest.",
    &[
        sub(
            "slowlog|reset",
            2,
            MONITOR_FLAGS,
            0,
            server_sub("2.2.12", "Empties the slow log.", ALL_NODES_SUCCEEDED),
        ),
        sub(
            "slowlog|len",
            2,
            MONITOR_FLAGS,
            0,
            server_sub(
                "2.2.12",
                "Counts the slow log's entries.",
                &[
                    "request_policy:all_nodes",
                    "response_policy:agg_sum",
                    "nondeterministic_output",
                ],
            ),
        ),
        sub(
            "slowlog|help",
            2,
            HELP_FLAGS,
            0,
            server_sub("6.2.0", "Lists the subcommands of SLOWLOG.", &[]),
        ),
        sub(
            "slowlog|get",
            -2,
            MONITOR_FLAGS,
            0,
            server_sub(
                "2.2.12",
                "Returns the slow log's newest entries.",
                &["request_policy:all_nodes", "nondeterministic_output"],
            ),
        ),
    ],
);

/// In the relative order of Redis 7.0's `COMMAND INFO latency`.
pub(super) const LATENCY: About = container(
    Group::Server,
    "2.8.13",
    "Shows the latency monitor's samples.",
    &[
        sub(
            "latency|reset",
            -2,
            LATENCY_FLAGS,
            0,
            server_sub("2.8.13", "Forgets latency samples.", ALL_NODES_SUCCEEDED),
        ),
        sub(
            "latency|latest",
            2,
            LATENCY_FLAGS,
            0,
            server_sub(
                "2.8.13",
                "Returns each event's latest and largest latency.",
                ALL_NODES_SPECIAL,
            ),
        ),
        sub(
            "latency|help",
            2,
            HELP_FLAGS,
            0,
            server_sub("2.8.13", "Lists the subcommands of LATENCY.", &[]),
        ),
        sub(
            "latency|history",
            3,
            LATENCY_FLAGS,
            0,
            server_sub(
                "2.8.13",
                "Returns an event's latency samples.",
                ALL_NODES_SPECIAL,
            ),
        ),
    ],
);

/// In the relative order of Redis 7.0's `COMMAND INFO memory`.
pub(super) const MEMORY: About = container(
    Group::Server,
    "4.0.0",
    "Reports memory use.",
    &[
        sub(
            "memory|usage",
            -3,
            &["readonly"],
            2,
            About {
                key_specs: &[KeySpec::at(2, &["RO"])],
                ..described(
                    Group::Server,
                    &[],
                    "4.0.0",
                    "Returns the bytes a stream holds in memory.",
                )
            },
        ),
        sub(
            "memory|stats",
            2,
            &[],
            0,
            server_sub(
                "4.0.0",
                "Returns the process's memory by kind.",
                &[
                    "nondeterministic_output",
                    "request_policy:all_shards",
                    "response_policy:special",
                ],
            ),
        ),
        sub(
            "memory|help",
            2,
            HELP_FLAGS,
            0,
            server_sub("4.0.0", "Lists the subcommands of MEMORY.", &[]),
        ),
    ],
);

const CLUSTER_FLAGS: &[&str] = &["stale"];
const CLUSTER_ADMIN_FLAGS: &[&str] = &["admin", "stale"];
const NONDETERMINISTIC: &[&str] = &["nondeterministic_output"];

const fn cluster(
    since: &'static str,
    summary: &'static str,
    tips: &'static [&'static str],
) -> About {
    About {
        tips,
        ..About::new(Group::Cluster, since, summary)
    }
}

/// The subcommands weir answers, in the relative order of Redis 7.0's `COMMAND INFO cluster`,
/// then weir's own. Those that change a Redis cluster's slots or membership are not among them:
/// a weir cluster's membership is changed by `ADDNODE` and `REMOVENODE` through its Raft log.
pub(super) const CLUSTER: About = container(
    Group::Cluster,
    "3.0.0",
    "Describes the cluster: its nodes, their slots, and the slot of a key.",
    &[
        sub(
            "cluster|nodes",
            2,
            CLUSTER_FLAGS,
            0,
            cluster(
                "3.0.0",
                "Describes every node, one line each.",
                NONDETERMINISTIC,
            ),
        ),
        sub(
            "cluster|countkeysinslot",
            3,
            CLUSTER_FLAGS,
            0,
            cluster("3.0.0", "Counts the keys in a hash slot.", &[]),
        ),
        sub(
            "cluster|help",
            2,
            HELP_FLAGS,
            0,
            cluster("5.0.0", "Lists the subcommands of CLUSTER.", &[]),
        ),
        sub(
            "cluster|keyslot",
            3,
            CLUSTER_FLAGS,
            0,
            cluster("3.0.0", "Returns the hash slot of a key.", &[]),
        ),
        sub(
            "cluster|info",
            2,
            CLUSTER_FLAGS,
            0,
            cluster(
                "3.0.0",
                "Reports the state of the cluster.",
                NONDETERMINISTIC,
            ),
        ),
        sub(
            "cluster|slaves",
            3,
            CLUSTER_ADMIN_FLAGS,
            0,
            cluster(
                "3.0.0",
                "Lists the replicas of a master (REPLICAS's old name).",
                NONDETERMINISTIC,
            ),
        ),
        sub(
            "cluster|shards",
            2,
            CLUSTER_FLAGS,
            0,
            cluster(
                "7.0.0",
                "Lists the shards: their slots and nodes.",
                NONDETERMINISTIC,
            ),
        ),
        sub(
            "cluster|getkeysinslot",
            4,
            CLUSTER_FLAGS,
            0,
            cluster("3.0.0", "Returns keys in a hash slot.", NONDETERMINISTIC),
        ),
        sub(
            "cluster|slots",
            2,
            CLUSTER_FLAGS,
            0,
            cluster(
                "3.0.0",
                "Maps ranges of hash slots to their nodes.",
                NONDETERMINISTIC,
            ),
        ),
        sub(
            "cluster|replicas",
            3,
            CLUSTER_ADMIN_FLAGS,
            0,
            cluster("5.0.0", "Lists the replicas of a master.", NONDETERMINISTIC),
        ),
        sub(
            "cluster|myid",
            2,
            CLUSTER_FLAGS,
            0,
            cluster("3.0.0", "Returns this node's name.", &[]),
        ),
        // weir's own: `since` is the first Redis version weir answers as.
        sub(
            "cluster|addnode",
            -4,
            CLUSTER_ADMIN_FLAGS,
            0,
            cluster(
                "7.0.0",
                "Adds a node to the cluster: a learner until it catches up, then a voter.",
                &[],
            ),
        ),
        sub(
            "cluster|removenode",
            3,
            CLUSTER_ADMIN_FLAGS,
            0,
            cluster("7.0.0", "Removes a node from the cluster.", &[]),
        ),
        sub(
            "cluster|rebalance",
            2,
            CLUSTER_ADMIN_FLAGS,
            0,
            cluster(
                "7.0.0",
                "Hands the shards this node leads over to their preferred leaders.",
                &[],
            ),
        ),
    ],
);
