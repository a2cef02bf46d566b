#ifndef SCF_SQLITE_VFS_H
#define SCF_SQLITE_VFS_H

/// Configures SQLite for this process, once, before anything else uses it: memory statistics off
/// (SQLite otherwise takes a process-wide mutex around every allocation and free to count them;
/// nothing here reads them). Call before the first connection opens; later calls do nothing.
void scf_sqlite_configure(void);

/// Registers (once; later calls return the same name) a SQLite VFS that wraps the default one and
/// coalesces the writes to a WAL file: SQLite writes each WAL frame with two calls (its 24-byte
/// header, then the page), so a transaction of a few thousand pages cost a few thousand `pwrite`s.
/// Contiguous writes are gathered in a buffer (120 KiB per WAL file, the most the unix VFS writes
/// in one call) and written with one call before anything that must see them: a sync, a read, a
/// size or truncate of the WAL, its close, a write elsewhere in it, and the database's
/// shared-memory barrier (the point where a commit is published to readers, whatever the
/// `synchronous` setting). Durability is unchanged: SQLite only counts on what it synced, and
/// every sync writes the buffer first.
///
/// Returns the VFS name to pass to `sqlite3_open_v2`, or NULL if it could not be registered.
const char *scf_sqlite_coalescing_vfs(void);

/// Write calls this process's coalescing WAL files made to the file system, and the write calls
/// SQLite made to them (for tests and measurements).
void scf_sqlite_coalescing_counts(long long *fileWrites, long long *sqliteWrites);

#endif
