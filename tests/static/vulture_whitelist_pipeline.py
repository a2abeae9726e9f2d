# What vulture cannot see used in source/, audit/, ecs/, alerts/ and the wiring (see test_static.py).
# Each entry names what it keeps alive and says why it is alive: read by reflection (asdict, getattr over
# __slots__), called back by a library, or an observable a test asserts.

# source/tail.py FollowerStats: a dataclass read whole by as_dict() (dataclasses.asdict) into the follower's
# stats, which `status` and the Prometheus metrics show (follower.rotations, follower.truncations...)
_.rotations  # FollowerStats counter, read by asdict()
_.truncations  # FollowerStats counter, read by asdict()
_.bytes_read  # FollowerStats counter, read by asdict()
_.files_caught_up  # FollowerStats counter, read by asdict()
_.lost_bytes_estimate  # FollowerStats counter, read by asdict()
_.unterminated_lines  # FollowerStats counter, read by asdict()
_.oversized_lines  # FollowerStats counter, read by asdict()
_.snapshot_retries  # FollowerStats counter, read by asdict()
fingerprint_of  # source/tail.py: the one definition of a Position's fingerprint for code building one by hand (tests/source/test_tail.py)
read_available  # source/tail.py LogFollower: the list form of iter_available() that the module docstring documents; tests read batches with it
read_batches  # source/reader.py: the list form of read_chunks(), for readers that want lines (tests, bench/bench_rules.py)
_.readinto  # source/reader.py: io.RawIOBase calls readinto() for every read() of the buffered stream
_.on_any_event  # source/watch.py: watchdog calls FileSystemEventHandler.on_any_event for every inotify event

# audit/reassembly.py ReassemblyStats: read by as_dict() (getattr over __slots__) into Pipeline.stats()["reassembly"]
_.execve_dropped  # ReassemblyStats counter, read by as_dict()
_.evicted  # ReassemblyStats counter, read by as_dict()
_.timed_out  # ReassemblyStats counter, read by as_dict()
_.late_records  # ReassemblyStats counter, read by as_dict()
_.bad_ids  # ReassemblyStats counter, read by as_dict()
_.netlink_pid  # audit/sockaddr.py SockAddr: the decoded netlink port id, part of the decoded address (tests/audit/test_sockaddr.py)

_.dropped  # ecs/process_table.py ProcessTable: entries dropped at max_entries, the memory bound's observable (tests/ecs/test_process_table.py)
_.pid_reuse  # ecs/process_table.py ProcessTable: pids found reused, the observable of pid-reuse handling (tests/ecs/test_process_table.py)
_.lookups  # ecs/procfs.py ProcResolver: how often /proc was asked (with `found`, the hit rate), tests/ecs/test_procfs.py

_.format  # cli.py _Formatter: logging.Handler calls Formatter.format() for every record
