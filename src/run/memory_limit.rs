//! How much memory a command may use: `--memory-limit`, or else 80% of the tighter of what
//! the machine has available and what the process's own cgroup still allows.
//!
//! A service with `MemoryMax=`, a `systemd-run --scope -p MemoryMax=…`, a container (nested
//! in another or not) each put the process in a cgroup whose limit the machine's free memory
//! knows nothing of. The cgroup is found from `/proc/self/cgroup` (v1: the `memory`
//! controller's line; v2: the `0::` line), resolved under the controller's mount through
//! `/proc/self/mountinfo` (whose mount root says which part of the hierarchy is mounted, so a
//! container that sees its own cgroup as `/` is read right), then every cgroup from the
//! process's up to the mount is read: `memory.limit_in_bytes` (v1), `memory.max` and
//! `memory.high` (v2). Each level leaves its limit minus what it holds already (its charged
//! memory, less the page cache it can drop without writing, less this process, whose memory
//! the budget covers); the tightest level is the one that counts.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::Config;
use crate::exit_codes::UsageError;
use crate::values::bytes::human;

/// The least memory `migrate` runs in: below it the fixed costs of the process (its code,
/// polars' thread pool, one extract's buffers, one diff part's frames) no longer fit, and a
/// limit would be exceeded rather than held. Measured: see docs/long-runs.md.
pub const MIN_MEMORY_LIMIT: u64 = 256 << 20;

/// `MIN_MEMORY_LIMIT` as `--memory-limit` takes it.
pub const MIN_MEMORY_LIMIT_FLAG: &str = "256MiB";

/// The share of the available memory (or of the cgroup's room) a run takes by default.
const DEFAULT_SHARE: f64 = 0.8;

/// The memory a command may use, and where that figure came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub bytes: u64,
    pub from: BudgetFrom,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BudgetFrom {
    /// `--memory-limit`.
    Flag,
    /// A share of what the cgroup still allows, which is less than the machine has available.
    Cgroup(CgroupLimit),
    /// A share of the memory available on the machine (no cgroup limit, or a looser one).
    Available(u64),
}

impl Budget {
    /// A budget of `bytes` given by `--memory-limit`.
    pub fn flag(bytes: u64) -> Budget {
        Budget {
            bytes,
            from: BudgetFrom::Flag,
        }
    }
}

impl fmt::Display for Budget {
    /// `1.2 GiB (80% of what cgroup v1 /sys/fs/cgroup/memory/x/memory.limit_in_bytes allows:
    /// 1.5 GiB, minus 120.0 MiB in use)`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} ({})", human(self.bytes), self.from)
    }
}

impl fmt::Display for BudgetFrom {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let share = DEFAULT_SHARE * 100.0;
        match self {
            BudgetFrom::Flag => write!(f, "--memory-limit"),
            BudgetFrom::Cgroup(limit) => write!(f, "{share:.0}% of what {limit}"),
            BudgetFrom::Available(bytes) => {
                write!(
                    f,
                    "{share:.0}% of the {} of memory available",
                    human(*bytes)
                )
            }
        }
    }
}

/// The memory budget of a command run with `config`: `--memory-limit`, or 80% of what the
/// machine and the process's cgroup allow. A budget below `MIN_MEMORY_LIMIT` is refused (a
/// `UsageError`, exit status 2) rather than exceeded; the message says where it came from.
pub fn budget(config: &Config) -> Result<Budget> {
    budget_of(config.memory_limit)
}

/// `budget` for a `--memory-limit` of `limit` (None: the default).
pub fn budget_of(limit: Option<u64>) -> Result<Budget> {
    let budget = match limit {
        Some(bytes) => {
            if let Some(cgroup) = cgroup_limit().filter(|c| c.room() < bytes) {
                tracing::warn!(
                    "--memory-limit {} is more than the process's cgroup allows ({cgroup}): \
                     the kernel may stop the run first",
                    human(bytes)
                );
            }
            Budget::flag(bytes)
        }
        None => default_budget(),
    };
    check_floor(&budget)?;
    Ok(budget)
}

/// Refuses a budget below `MIN_MEMORY_LIMIT`.
pub fn check_floor(budget: &Budget) -> Result<(), UsageError> {
    if budget.bytes >= MIN_MEMORY_LIMIT {
        return Ok(());
    }
    let floor = human(MIN_MEMORY_LIMIT);
    Err(UsageError(match &budget.from {
        BudgetFrom::Flag => too_small_limit(budget.bytes),
        from => format!(
            "the memory budget is {}, {from}, below the {floor} migrate needs at least: give \
             the cgroup (or the machine) more memory, or pass --memory-limit of at least \
             {floor} if that much is free",
            human(budget.bytes),
        ),
    }))
}

/// The message for a `--memory-limit` below `MIN_MEMORY_LIMIT`.
pub fn too_small_limit(bytes: u64) -> String {
    format!(
        "--memory-limit {} is below the {} migrate needs at least (the process, one extract \
         and one diff part at their smallest); give at least {}",
        human(bytes),
        human(MIN_MEMORY_LIMIT),
        MIN_MEMORY_LIMIT_FLAG
    )
}

/// 80% of the tighter of the machine's available memory and the cgroup's room.
pub fn default_budget() -> Budget {
    let available = available_memory().unwrap_or(1 << 30);
    let share = |bytes: u64| (bytes as f64 * DEFAULT_SHARE) as u64;
    match cgroup_limit() {
        Some(limit) if limit.room() < available => Budget {
            bytes: share(limit.room()),
            from: BudgetFrom::Cgroup(limit),
        },
        _ => Budget {
            bytes: share(available),
            from: BudgetFrom::Available(available),
        },
    }
}

/// The memory available on the machine (free memory plus what the kernel can reclaim).
fn available_memory() -> Option<u64> {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    Some(system.available_memory()).filter(|&bytes| bytes > 0)
}

/// The tightest memory limit of the cgroups the process is in.
#[derive(Debug, Clone, PartialEq)]
pub struct CgroupLimit {
    /// 1 or 2.
    pub version: u8,
    /// The file the limit was read from.
    pub file: PathBuf,
    pub limit: u64,
    /// What that cgroup holds besides this process: its charged memory, less the page cache
    /// it can drop without writing, less this process's resident memory.
    pub used: u64,
}

impl CgroupLimit {
    /// What the cgroup still allows this process.
    pub fn room(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

impl fmt::Display for CgroupLimit {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "cgroup v{} {} allows: {}, minus {} in use",
            self.version,
            self.file.display(),
            human(self.limit),
            human(self.used)
        )
    }
}

/// The tightest limit of this process's cgroups, v1 and v2; None when no cgroup on the way
/// up has one (or no memory controller is mounted).
pub fn cgroup_limit() -> Option<CgroupLimit> {
    cgroup_limit_in(Path::new("/"), current_rss())
}

/// `cgroup_limit` with every path read below `root` (a fake tree, in tests) and `own` bytes
/// counted as this process's.
pub fn cgroup_limit_in(root: &Path, own: u64) -> Option<CgroupLimit> {
    let read = |path: &Path| std::fs::read_to_string(under(root, path)).ok();
    let cgroups = read(Path::new("/proc/self/cgroup"))?;
    let mounts = read(Path::new("/proc/self/mountinfo")).unwrap_or_default();
    let mut limits = Vec::new();
    for (version, path) in memory_cgroups(&cgroups) {
        let Some((mount_point, mount_root)) = memory_mount(&mounts, version) else {
            continue;
        };
        // The part of the cgroup's path below what is mounted; all of it when the mount
        // shows another part of the hierarchy than the one the process is in.
        let relative = Path::new(&path)
            .strip_prefix(&mount_root)
            .unwrap_or(Path::new(""));
        let top = under(root, Path::new(&mount_point));
        let mut dir = top.join(relative);
        loop {
            limits.extend(read_level(&dir, version, own).map(|mut limit| {
                limit.file = strip_root(root, &limit.file);
                limit
            }));
            if dir == top || !dir.pop() || !dir.starts_with(&top) {
                break;
            }
        }
    }
    limits.into_iter().min_by_key(CgroupLimit::room)
}

/// `path` (absolute) below `root`.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// `path` as the process sees it, without the test's `root`.
fn strip_root(root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix(root) {
        Ok(rest) if root != Path::new("/") => Path::new("/").join(rest),
        _ => path.to_path_buf(),
    }
}

/// The memory cgroups of `/proc/self/cgroup`: (1, path) for the v1 `memory` controller,
/// (2, path) for the unified hierarchy.
fn memory_cgroups(text: &str) -> Vec<(u8, String)> {
    let mut found = Vec::new();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            found.push((2, path.to_string()));
        } else if controllers.split(',').any(|c| c == "memory") {
            found.push((1, path.to_string()));
        }
    }
    found
}

/// Where the v1 memory controller (or the v2 hierarchy) is mounted: (mount point, the
/// cgroup path mounted there), from `/proc/self/mountinfo`.
fn memory_mount(mountinfo: &str, version: u8) -> Option<(String, String)> {
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - type source super
        let Some((before, after)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = before.split(' ').collect();
        let tail: Vec<&str> = after.split(' ').collect();
        if fields.len() < 5 || tail.is_empty() {
            continue;
        }
        let matches = match (version, tail[0]) {
            (2, "cgroup2") => true,
            (1, "cgroup") => tail
                .get(2)
                .is_some_and(|options| options.split(',').any(|o| o == "memory")),
            _ => false,
        };
        if matches {
            return Some((unescape(fields[4]), unescape(fields[3])));
        }
    }
    None
}

/// mountinfo writes spaces, tabs, newlines and backslashes in paths as octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A limit this high is no limit (v1 writes "none" as 2^63 rounded down to a page).
const NO_LIMIT: u64 = 1 << 62;

/// The limit of one cgroup and what it holds; None when it has none.
fn read_level(dir: &Path, version: u8, own: u64) -> Option<CgroupLimit> {
    let number = |name: &str| -> Option<u64> {
        let text = std::fs::read_to_string(dir.join(name)).ok()?;
        text.trim().parse::<u64>().ok().filter(|&v| v < NO_LIMIT)
    };
    let (file, limit) = match version {
        1 => ("memory.limit_in_bytes", number("memory.limit_in_bytes")?),
        _ => [
            ("memory.max", number("memory.max")),
            ("memory.high", number("memory.high")),
        ]
        .into_iter()
        .filter_map(|(file, limit)| Some((file, limit?)))
        .min_by_key(|(_, limit)| *limit)?,
    };
    let (usage, reclaimable) = match version {
        1 => (
            number("memory.usage_in_bytes"),
            stat(dir, "total_inactive_file"),
        ),
        _ => (number("memory.current"), stat(dir, "inactive_file")),
    };
    let used = usage
        .unwrap_or(0)
        .saturating_sub(reclaimable.unwrap_or(0))
        .saturating_sub(own);
    Some(CgroupLimit {
        version,
        file: dir.join(file),
        limit,
        used,
    })
}

/// One figure of a cgroup's `memory.stat`.
fn stat(dir: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// This process's resident memory now, in bytes; 0 where unknown.
pub fn current_rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A fake root: `/proc/self/cgroup`, `/proc/self/mountinfo`, and cgroup files.
    struct Tree(tempfile::TempDir);

    impl Tree {
        fn new(cgroup: &str, mountinfo: &str) -> Tree {
            let tree = Tree(tempfile::tempdir().unwrap());
            tree.write("proc/self/cgroup", cgroup);
            tree.write("proc/self/mountinfo", mountinfo);
            tree
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn limit(&self, own: u64) -> Option<CgroupLimit> {
            cgroup_limit_in(self.0.path(), own)
        }
    }

    const V1_MOUNTS: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const V1_CGROUP: &str = "\
4:memory:/jobs/run
1:cpu:/
0::/
";
    const UNLIMITED: &str = "9223372036854771712\n";

    #[test]
    fn the_tightest_v1_limit_on_the_way_up_minus_what_is_in_use() {
        let tree = Tree::new(V1_CGROUP, V1_MOUNTS);
        let memory = "sys/fs/cgroup/memory";
        tree.write(&format!("{memory}/memory.limit_in_bytes"), UNLIMITED);
        tree.write(
            &format!("{memory}/jobs/memory.limit_in_bytes"),
            "734003200\n",
        );
        tree.write(
            &format!("{memory}/jobs/memory.usage_in_bytes"),
            &format!("{}", 300 * MIB),
        );
        tree.write(
            &format!("{memory}/jobs/memory.stat"),
            &format!(
                "cache 5\ninactive_file 1\ntotal_inactive_file {}\n",
                100 * MIB
            ),
        );
        tree.write(
            &format!("{memory}/jobs/run/memory.limit_in_bytes"),
            UNLIMITED,
        );
        tree.write(
            &format!("{memory}/jobs/run/memory.usage_in_bytes"),
            "1000\n",
        );
        // 700 MiB, of which 300 MiB are charged: 100 MiB of cache to drop, 20 MiB this
        // process, 180 MiB others.
        let limit = tree.limit(20 * MIB).expect("a limit");
        assert_eq!(limit.version, 1);
        assert_eq!(
            limit.file,
            Path::new("/sys/fs/cgroup/memory/jobs/memory.limit_in_bytes")
        );
        assert_eq!((limit.limit, limit.used), (700 * MIB, 180 * MIB));
        assert_eq!(limit.room(), 520 * MIB);
        assert_eq!(
            limit.to_string(),
            "cgroup v1 /sys/fs/cgroup/memory/jobs/memory.limit_in_bytes allows: 700.0 MiB, \
             minus 180.0 MiB in use"
        );
        // A tighter limit below it, whose room is smaller, counts instead.
        tree.write(
            &format!("{memory}/jobs/run/memory.limit_in_bytes"),
            &format!("{}", 600 * MIB),
        );
        tree.write(
            &format!("{memory}/jobs/run/memory.usage_in_bytes"),
            &format!("{}", 150 * MIB),
        );
        let limit = tree.limit(20 * MIB).unwrap();
        assert_eq!((limit.limit, limit.used), (600 * MIB, 130 * MIB));
        assert!(limit.file.ends_with("jobs/run/memory.limit_in_bytes"));
    }

    #[test]
    fn no_limit_anywhere_is_none() {
        let tree = Tree::new(V1_CGROUP, V1_MOUNTS);
        for dir in ["", "/jobs", "/jobs/run"] {
            tree.write(
                &format!("sys/fs/cgroup/memory{dir}/memory.limit_in_bytes"),
                UNLIMITED,
            );
        }
        assert_eq!(tree.limit(0), None);
        // Nor without a memory controller mounted.
        let tree = Tree::new(
            V1_CGROUP,
            "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
        );
        assert_eq!(tree.limit(0), None);
    }

    #[test]
    fn a_container_sees_its_own_cgroup_as_the_mount_root() {
        // Docker without a cgroup namespace: /proc/self/cgroup shows the host's path, and
        // that path is what is mounted at /sys/fs/cgroup/memory.
        let mounts =
            "500 400 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n";
        let tree = Tree::new("9:memory:/docker/abc\n", mounts);
        tree.write(
            "sys/fs/cgroup/memory/memory.limit_in_bytes",
            &format!("{}", 512 * MIB),
        );
        tree.write(
            "sys/fs/cgroup/memory/memory.usage_in_bytes",
            &format!("{}", 10 * MIB),
        );
        let limit = tree.limit(10 * MIB).unwrap();
        assert_eq!((limit.limit, limit.used), (512 * MIB, 0));
        assert_eq!(
            limit.file,
            Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        );
    }

    #[test]
    fn v2_takes_the_lower_of_max_and_high_and_skips_max() {
        let mounts = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let tree = Tree::new("0::/system.slice/migrate.service\n", mounts);
        let slice = "sys/fs/cgroup/system.slice";
        tree.write(&format!("{slice}/memory.max"), "max\n");
        tree.write(&format!("{slice}/memory.high"), "max\n");
        let service = format!("{slice}/migrate.service");
        tree.write(
            &format!("{service}/memory.max"),
            &format!("{}\n", 1024 * MIB),
        );
        tree.write(
            &format!("{service}/memory.high"),
            &format!("{}\n", 800 * MIB),
        );
        tree.write(
            &format!("{service}/memory.current"),
            &format!("{}\n", 250 * MIB),
        );
        tree.write(
            &format!("{service}/memory.stat"),
            &format!(
                "anon 1\nfile 2\nactive_file 3\ninactive_file {}\n",
                200 * MIB
            ),
        );
        let limit = tree.limit(30 * MIB).unwrap();
        assert_eq!(limit.version, 2);
        assert!(
            limit.file.ends_with("migrate.service/memory.high"),
            "{limit:?}"
        );
        assert_eq!((limit.limit, limit.used), (800 * MIB, 20 * MIB));
    }

    #[test]
    fn a_v2_path_with_a_space_is_unescaped() {
        let mounts = "30 23 0:26 / /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";
        let tree = Tree::new("0::/a b\n", mounts);
        tree.write("sys/fs/cgroup x/a b/memory.max", "1048576000\n");
        let limit = tree.limit(0).unwrap();
        assert_eq!(limit.file, Path::new("/sys/fs/cgroup x/a b/memory.max"));
    }

    #[test]
    fn budgets_say_where_they_come_from_and_the_floor_is_refused() {
        let cgroup = CgroupLimit {
            version: 1,
            file: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes".into(),
            limit: 700 * MIB,
            used: 100 * MIB,
        };
        let budget = Budget {
            bytes: 480 * MIB,
            from: BudgetFrom::Cgroup(cgroup.clone()),
        };
        assert_eq!(
            budget.to_string(),
            "480.0 MiB (80% of what cgroup v1 /sys/fs/cgroup/memory/x/memory.limit_in_bytes \
             allows: 700.0 MiB, minus 100.0 MiB in use)"
        );
        assert!(check_floor(&budget).is_ok());
        let small = Budget {
            bytes: 200 * MIB,
            from: BudgetFrom::Cgroup(cgroup),
        };
        let refused = check_floor(&small).unwrap_err().to_string();
        assert!(refused.contains("below the 256.0 MiB"), "{refused}");
        assert!(refused.contains("memory.limit_in_bytes"), "{refused}");
        let flag = check_floor(&Budget::flag(100 * MIB))
            .unwrap_err()
            .to_string();
        assert!(
            flag.starts_with("--memory-limit 100.0 MiB is below"),
            "{flag}"
        );
        assert!(flag.contains("give at least 256MiB"), "{flag}");
        assert_eq!(
            MIN_MEMORY_LIMIT_FLAG,
            format!("{}MiB", MIN_MEMORY_LIMIT >> 20)
        );
    }

    #[test]
    fn this_machine_gives_a_budget() {
        // Whatever the machine: a figure, and a cgroup limit only where one was found.
        let budget = default_budget();
        assert!(budget.bytes > 0);
        if let BudgetFrom::Cgroup(limit) = &budget.from {
            assert!(limit.file.exists(), "{limit}");
        }
    }
}
