//! The tracking log's schema, described once: its tables, their columns with the migration
//! that added each, and their indexes. Each dialect renders the DDL from it with its own type
//! map, so a column added here reaches SQLite and PostgreSQL alike (and `sql.rs` checks that
//! the record writes every column of `messages`).
//!
//! - `schema_version(version)`: one row, the applied migration count;
//! - `messages`: one row per message (see `Record`); `ts` is when trackless processed it,
//!   `date` the message's Date header, `seen` the time reports use (the Date header unless it
//!   is missing or in the future, then `ts`). Retention (`prune`) goes by `ts`;
//! - `esp`: the providers named for a message, with layer, confidence and evidence (JSON);
//! - `trackers`: each tracker found (kind, action, host, vendor, rule, url);
//! - `headers` (v2): original header blocks of tracked messages, only with `--keep-headers`;
//! - `messages.spacers` (v3): invisible layout images removed, counted apart from pixels;
//! - `remote` (v4): the remote hosts a message's HTML would contact on opening, one row per
//!   host, kind (image, srcset, background, css, stylesheet, font, poster), fate (`removed`
//!   1: trackless took those URLs out) and `token` (1: they carry a per-recipient value), with
//!   `count` URLs. Only hosts, never the URLs: the trackers' URLs are in `trackers`;
//! - `messages.original_sha256` (v5): the SHA-256 (hex) of the message as received, only for
//!   tracked messages and only with `[log] keep_originals = "tracked"`, which also keeps the
//!   bytes as `originals/<sha256>.eml` beside the log (`originals.rs`).

/// The SQL dialect of a log backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Column types, mapped by each dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// The table's own key, which other tables reference as `table(id)`.
    Key,
    /// A key that is also a reference to `table(id)`: at most one row per row there.
    KeyOf(&'static str),
    /// A reference to `table(id)`; the row goes when that one is deleted.
    Ref(&'static str),
    /// An integer (counts, unix seconds, booleans as 0/1).
    Int,
    Text,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: Ty,
    /// NOT NULL (integers then default to 0, so that a migration can add them).
    pub required: bool,
    /// The migration that added it.
    pub since: usize,
}

#[derive(Debug)]
pub struct Index {
    pub name: &'static str,
    pub columns: &'static str,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The migration that created it (with its indexes).
    pub since: usize,
    /// Rows are read back in insertion order: SQLite has `rowid`, PostgreSQL gets an `id`.
    pub ordered: bool,
    pub columns: &'static [Column],
    pub indexes: &'static [Index],
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// How many migrations there are: the schema version of a log this trackless writes.
pub const VERSION: usize = 5;

const fn col(name: &'static str, ty: Ty, required: bool) -> Column {
    Column {
        name,
        ty,
        required,
        since: 1,
    }
}

const fn int(name: &'static str) -> Column {
    col(name, Ty::Int, true)
}

const fn text(name: &'static str) -> Column {
    col(name, Ty::Text, false)
}

pub const MESSAGES: Table = Table {
    name: "messages",
    since: 1,
    ordered: false,
    columns: &[
        col("id", Ty::Key, true),
        int("ts"),
        col("date", Ty::Int, false),
        int("seen"),
        col("mode", Ty::Text, true),
        text("message_id_hash"),
        text("envelope_sender"),
        text("from_addr"),
        text("from_domain"),
        text("subject"),
        text("recipients"),
        int("changed"),
        int("tracked"),
        int("pixels"),
        int("fonts"),
        int("links_total"),
        int("links_unwrapped"),
        int("links_cleaned"),
        int("links_opaque"),
        text("skipped"),
        text("esp"),
        text("esp_confidence"),
        text("jurisdiction"),
        col("us_exposure", Ty::Int, false),
        Column {
            since: 3,
            ..int("spacers")
        },
        Column {
            since: 5,
            ..text("original_sha256")
        },
    ],
    indexes: &[
        Index {
            name: "messages_ts",
            columns: "ts",
        },
        Index {
            name: "messages_seen",
            columns: "seen",
        },
        Index {
            name: "messages_domain_seen",
            columns: "from_domain, seen",
        },
        Index {
            name: "messages_from_seen",
            columns: "from_addr, seen",
        },
        Index {
            name: "messages_msgid",
            columns: "message_id_hash",
        },
    ],
};

pub const ESP: Table = Table {
    name: "esp",
    since: 1,
    ordered: true,
    columns: &[
        col("message", Ty::Ref("messages"), true),
        col("name", Ty::Text, true),
        col("layer", Ty::Text, true),
        col("confidence", Ty::Text, true),
        text("jurisdiction"),
        col("us_exposure", Ty::Int, false),
        col("evidence", Ty::Text, true),
    ],
    indexes: &[Index {
        name: "esp_message",
        columns: "message",
    }],
};

pub const TRACKERS: Table = Table {
    name: "trackers",
    since: 1,
    ordered: true,
    columns: &[
        col("message", Ty::Ref("messages"), true),
        col("kind", Ty::Text, true),
        col("action", Ty::Text, true),
        col("host", Ty::Text, true),
        text("vendor"),
        text("rule"),
        col("url", Ty::Text, true),
    ],
    indexes: &[Index {
        name: "trackers_message",
        columns: "message",
    }],
};

pub const HEADERS: Table = Table {
    name: "headers",
    since: 2,
    ordered: false,
    columns: &[
        Column {
            since: 2,
            ..col("message", Ty::KeyOf("messages"), true)
        },
        Column {
            since: 2,
            ..col("block", Ty::Text, true)
        },
    ],
    indexes: &[],
};

const fn v4(c: Column) -> Column {
    Column { since: 4, ..c }
}

pub const REMOTE: Table = Table {
    name: "remote",
    since: 4,
    ordered: true,
    columns: &[
        v4(col("message", Ty::Ref("messages"), true)),
        v4(col("host", Ty::Text, true)),
        v4(col("kind", Ty::Text, true)),
        v4(int("removed")),
        v4(int("token")),
        v4(int("count")),
    ],
    indexes: &[
        Index {
            name: "remote_message",
            columns: "message",
        },
        Index {
            name: "remote_host",
            columns: "host",
        },
    ],
};

pub const TABLES: &[&Table] = &[&MESSAGES, &ESP, &TRACKERS, &HEADERS, &REMOTE];

impl Dialect {
    /// The n-th (1-based) statement parameter.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// The column that orders an `ordered` table's rows by insertion.
    pub fn row_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "id",
        }
    }

    /// Starts a transaction that writes (SQLite takes the write lock at once, so that two
    /// writers never both read and then both try to write).
    pub fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// A transaction that only reads, seeing one state of the log throughout.
    pub fn begin_read(self) -> &'static str {
        match self {
            // Deferred: the snapshot is taken at the first read and kept to the COMMIT (WAL).
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    fn int(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER",
            Dialect::Postgres => "BIGINT",
        }
    }

    /// A column's definition.
    pub fn column(self, c: &Column) -> String {
        let not_null = if c.required { " NOT NULL" } else { "" };
        let ty = match c.ty {
            Ty::Key => {
                return match self {
                    Dialect::Sqlite => format!("{} INTEGER PRIMARY KEY", c.name),
                    Dialect::Postgres => format!("{} BIGSERIAL PRIMARY KEY", c.name),
                }
            }
            Ty::KeyOf(t) => format!(
                "{} PRIMARY KEY REFERENCES {t}(id) ON DELETE CASCADE",
                self.int()
            ),
            Ty::Ref(t) => format!(
                "{}{not_null} REFERENCES {t}(id) ON DELETE CASCADE",
                self.int()
            ),
            Ty::Int if c.required => format!("{} NOT NULL DEFAULT 0", self.int()),
            Ty::Int => self.int().to_string(),
            Ty::Text => format!("TEXT{not_null}"),
        };
        format!("{} {ty}", c.name)
    }

    /// `CREATE TABLE schema_version`, the one table outside the migrations.
    pub fn version_table(self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS schema_version (version {} NOT NULL)",
            self.int()
        )
    }

    /// The DDL of migration `version` (1-based): the tables it creates with their indexes,
    /// the columns it adds to older tables.
    pub fn migration(self, version: usize) -> String {
        let mut out = Vec::new();
        for t in TABLES {
            if t.since == version {
                let mut cols = Vec::new();
                if t.ordered && self == Dialect::Postgres {
                    cols.push("id BIGSERIAL PRIMARY KEY".to_string());
                }
                cols.extend(
                    t.columns
                        .iter()
                        .filter(|c| c.since == version)
                        .map(|c| self.column(c)),
                );
                out.push(format!(
                    "CREATE TABLE {} (\n    {}\n)",
                    t.name,
                    cols.join(",\n    ")
                ));
                for i in t.indexes {
                    out.push(format!(
                        "CREATE INDEX {} ON {}({})",
                        i.name, t.name, i.columns
                    ));
                }
            } else if t.since < version {
                for c in t.columns.iter().filter(|c| c.since == version) {
                    out.push(format!(
                        "ALTER TABLE {} ADD COLUMN {}",
                        t.name,
                        self.column(c)
                    ));
                }
            }
        }
        out.iter().map(|s| format!("{s};\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_does_something_and_none_is_beyond_the_version() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            for v in 1..=VERSION {
                assert!(!d.migration(v).trim().is_empty(), "{d:?} migration {v}");
            }
            assert!(d.migration(VERSION + 1).is_empty());
        }
        for t in TABLES {
            assert!(t.since >= 1 && t.since <= VERSION, "{}", t.name);
            for c in t.columns {
                assert!(
                    c.since >= t.since && c.since <= VERSION,
                    "{}.{}",
                    t.name,
                    c.name
                );
            }
        }
    }

    #[test]
    fn dialects_differ_only_in_their_type_map() {
        let lite = Dialect::Sqlite.migration(1);
        let pg = Dialect::Postgres.migration(1);
        assert!(lite.contains("id INTEGER PRIMARY KEY"), "{lite}");
        assert!(pg.contains("id BIGSERIAL PRIMARY KEY"), "{pg}");
        assert!(pg.contains("message BIGINT NOT NULL REFERENCES messages(id)"));
        assert!(lite.contains("message INTEGER NOT NULL REFERENCES messages(id)"));
        assert_eq!(
            lite.matches("CREATE INDEX").count(),
            pg.matches("CREATE INDEX").count()
        );
        assert_eq!(
            Dialect::Sqlite.migration(3),
            "ALTER TABLE messages ADD COLUMN spacers INTEGER NOT NULL DEFAULT 0;\n"
        );
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            assert_eq!(
                d.migration(5),
                "ALTER TABLE messages ADD COLUMN original_sha256 TEXT;\n"
            );
        }
    }
}
