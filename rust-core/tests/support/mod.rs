//! File systems for tests: a fault-injecting wrapper and a simulated power cut.
#![allow(dead_code)]

pub mod faultfs;
pub mod simfs;

/// The `FileSystem` calls that a test file system passes unchanged to the
/// operating system's: `create_dir_all`, `rename`, `remove_file`,
/// `hard_link`, `sync_dir` and `lock`. Expanded inside an
/// `impl FileSystem for ...` that writes `open`, `stat` and `read_dir`
/// itself (the calls a test observes or changes).
#[macro_export]
macro_rules! directory_calls_to_os {
    () => {
        fn create_dir_all(&self, dir: &::std::path::Path) -> ::std::io::Result<()> {
            ::mantisdb_core::vfs::FileSystem::create_dir_all(&::mantisdb_core::vfs::OsFileSystem, dir)
        }
        fn rename(&self, from: &::std::path::Path, to: &::std::path::Path) -> ::std::io::Result<()> {
            ::mantisdb_core::vfs::FileSystem::rename(&::mantisdb_core::vfs::OsFileSystem, from, to)
        }
        fn remove_file(&self, path: &::std::path::Path) -> ::std::io::Result<()> {
            ::mantisdb_core::vfs::FileSystem::remove_file(&::mantisdb_core::vfs::OsFileSystem, path)
        }
        fn hard_link(&self, src: &::std::path::Path, dst: &::std::path::Path) -> ::std::io::Result<()> {
            ::mantisdb_core::vfs::FileSystem::hard_link(&::mantisdb_core::vfs::OsFileSystem, src, dst)
        }
        fn sync_dir(&self, dir: &::std::path::Path) -> ::std::io::Result<()> {
            ::mantisdb_core::vfs::FileSystem::sync_dir(&::mantisdb_core::vfs::OsFileSystem, dir)
        }
        fn lock(
            &self,
            path: &::std::path::Path,
        ) -> ::std::io::Result<::std::boxed::Box<dyn ::mantisdb_core::vfs::FileHandle>> {
            ::mantisdb_core::vfs::FileSystem::lock(&::mantisdb_core::vfs::OsFileSystem, path)
        }
    };
}
