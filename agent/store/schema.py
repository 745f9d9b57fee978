"""The core tables: apps, their config, domains and releases, SSH keys, events.

Other subsystems declare their own tables next to their code (the certificate manager's
in agent.certs); the agent passes every schema to `Database.open`.
"""

from __future__ import annotations

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS apps (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        settings TEXT NOT NULL DEFAULT '{}',   -- JSON: per-app settings (apps:set)
        formation TEXT NOT NULL DEFAULT '{}',  -- JSON: process type -> instances
        stopped INTEGER NOT NULL DEFAULT 0     -- ps:stop
    )""",
    """CREATE TABLE IF NOT EXISTS config_vars (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (app, key)
    )""",
    """CREATE TABLE IF NOT EXISTS domains (
        domain TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS releases (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        number INTEGER NOT NULL,
        state TEXT NOT NULL,
        description TEXT NOT NULL,
        created_at REAL NOT NULL,
        finished_at REAL,
        git_sha TEXT NOT NULL DEFAULT '',
        image TEXT NOT NULL DEFAULT '',
        image_tag TEXT NOT NULL DEFAULT '',
        builder TEXT NOT NULL DEFAULT '',
        config TEXT NOT NULL DEFAULT '{}',
        processes TEXT NOT NULL DEFAULT '{}',
        release_command TEXT NOT NULL DEFAULT '',
        app_json TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        log TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (app, number)
    )""",
    """CREATE TABLE IF NOT EXISTS storage_mounts (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        path TEXT NOT NULL,                    -- the container path (agent.storage)
        created_at REAL NOT NULL,
        PRIMARY KEY (app, path)
    )""",
    """CREATE TABLE IF NOT EXISTS ssh_keys (
        name TEXT PRIMARY KEY,
        public_key TEXT NOT NULL,
        fingerprint TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        scope TEXT NOT NULL DEFAULT '*'        -- '*': admin; else a JSON list of apps
    )""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        app TEXT NOT NULL,
        time REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_app ON events(app, id)",
    """CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time REAL NOT NULL,
        actor TEXT NOT NULL,                   -- an SSH key's name, or root@server
        verb TEXT NOT NULL,                    -- config:set, push, ...
        app TEXT NOT NULL DEFAULT '',
        outcome TEXT NOT NULL                  -- ok, or the error's line
    )""",
    "CREATE INDEX IF NOT EXISTS audit_by_app ON audit(app, id)",
)
