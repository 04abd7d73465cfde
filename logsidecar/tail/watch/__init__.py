"""Change hints for the tailer: one interface (`base.Watcher`), inotify and stat polling behind it,
selection by filesystem (`select.select_watcher`). The tailer names no mechanism."""
