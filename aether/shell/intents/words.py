"""The words intents look for, grouped so one intent accepts many phrasings
("stop sysmon", "kill the sysmon agent", "shut sysmon down" are one evidence sum).
Every tuple of strings here is also part of the planner's vocabulary.
"""

SHOW = ("show", "list", "display", "print", "get", "give", "view", "see", "check", "tell",
        "report", "what", "which", "how", "are", "is", "any", "find", "look", "whats", "query")
STOP = ("stop", "kill", "terminate", "halt", "end", "shut", "shutdown", "abort", "quit")
START = ("start", "launch", "run", "resume", "boot", "bring", "begin", "fire", "enable")
RESTART = ("restart", "relaunch", "reload", "bounce", "recycle", "respawn", "reboot")
SPAWN = ("spawn", "create", "make", "new", "add", "deploy", "set", "setup")
MEMORY = ("memory", "ram", "mem", "swap", "meminfo")
CPU = ("cpu", "cpus", "processor", "processors", "load", "busy", "loadavg", "cores", "utilisation",
       "utilization")
DISK = ("disk", "disks", "storage", "space", "filesystem", "filesystems", "partition", "partitions",
        "mounts", "mounted", "df", "drive", "drives")
NET = ("network", "networking", "interfaces", "interface", "ip", "ips", "address", "addresses",
       "online", "connected", "connection", "internet", "routes", "route", "gateway", "nic", "eth0",
       "ifconfig", "mac")
TIME = ("time", "date", "clock", "day", "today", "timezone", "utc")
ALERT = ("alert", "alerts", "warning", "warnings", "alarm", "alarms", "notification", "notifications",
         "problems", "issues", "errors")
AGENTWORD = ("agent", "agents", "services", "service", "daemons", "workers")
PROC = ("process", "processes", "ps", "programs", "tasks", "pids", "top")
LOGS = ("log", "logs", "output", "printed", "print", "stdout", "said", "saying", "messages", "tail", "lines",
        "wrote", "written")
INSPECT = ("inspect", "details", "detail", "describe", "info", "information", "about", "doing",
           "state", "status", "health", "usage", "using", "limits", "explain")
FILEWORDS = ("file", "files", "directory", "folder", "dir", "contents", "content")
REMEMBER = ("remember", "memorise", "memorize", "note", "record", "save", "store", "keep")
FORGET = ("forget", "erase", "unlearn", "drop")
RECALL = ("recall", "know", "remember", "memories", "memory", "notes", "said", "told", "knowledge")
SEARCH = ("search", "find", "lookup", "grep", "look")
WHEN_WORDS = ("when", "whenever", "once", "if", "alert", "notify", "warn", "tell", "ping", "let")
ABOVE = ("above", "over", "exceeds", "exceed", "exceeding", "more", "higher", "greater", "crosses",
         "past", "beyond", "reaches", "hits", ">")
BELOW = ("below", "under", "less", "lower", "drops", "falls", "<")
EVERY = ("every", "each", "hourly", "minutely", "periodically", "regularly", "daily")
POWEROFF = ("poweroff", "shutdown", "halt")
WRITE = ("write", "append", "put", "overwrite", "save", "create", "replace")
DELETE = ("delete", "remove", "rm", "erase", "unlink", "del", "destroy", "wipe", "rid")
MACHINE = ("machine", "system", "computer", "box", "vm", "os", "aetheros", "host", "server")
QUESTION = ("when", "since", "last", "ago", "how", "was", "were", "did", "changed", "happened")
POLITE = ("please", "could", "would", "can", "you", "kindly", "now", "me", "for", "the", "a", "an",
          "i", "want", "to", "like", "need", "us", "let", "just", "quickly", "go", "ahead")
