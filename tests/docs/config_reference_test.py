#!/usr/bin/env python3
"""Every config key the parsers accept is documented in sink.yaml(5), in the
section of its block, and (but for the collect: options) in `sink -h`; every
subcommand main() dispatches is in `sink -h` and sink(1) and has its own -h.
The keys are read from the parsers' sources (the only_keys() lists of
config/YamlConfig.cpp, the collector's option lists), so a key added there
without documentation fails this test.
Usage: config_reference_test.py SOURCE_DIR BUILD_DIR"""
import os, re, subprocess, sys

src, build = sys.argv[1], sys.argv[2]
problems = []


def read(*parts):
    with open(os.path.join(src, *parts)) as f:
        return f.read()


def literals(text):
    return re.findall(r'"([^"]*)"', text)


def parser_keys():
    """{section: keys}: "top" for the top level, "groups" for a group."""
    sections = {}
    for node_key, brace in re.findall(r'only_keys\(\s*\w+\s*,\s*("[^"]*"|key)\s*,\s*\{(.*?)\}\s*\)',
                                      read("config", "YamlConfig.cpp"), re.S):
        name = {'""': "top", "key": "groups"}.get(node_key, node_key.strip('"'))
        sections.setdefault(name, set()).update(literals(brace))
    nats = re.search(r"nats_option_names\(\)\s*\{.*?names\{(.*?)\}", read("support", "nats", "NatsConnection.cpp"),
                     re.S)
    collect = re.search(r"parse_collect\(.*?for \(const char \*k : \{(.*?)\}\)", read("core", "Collector.cpp"), re.S)
    if not nats or not collect:
        problems.append("cannot find the collect: option lists in NatsConnection.cpp / Collector.cpp")
    else:
        sections["collect"] = set(literals(nats.group(1))) | set(literals(collect.group(1)))
    return sections


def man_sections(path):
    """{section: words set in bold}, sections split at .SS (first word, lowercase)."""
    bold, name = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith(".SS "):
            name = line[4:].strip().strip('"').split()[0].lower()
            continue
        if name is None:
            continue
        words = bold.setdefault(name, set())
        macro = re.match(r"\.(B|BR|RB|BI|IB)\s+(.*)", line)
        if macro:
            # .BR a ", " b: every other argument is bold; a word in any of
            # them is close enough for "is it documented here".
            words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", macro.group(2)))
        words.update(re.findall(r"\\fB([A-Za-z_][A-Za-z0-9_]*)", line))
    return bold


keys = parser_keys()
for section in ("top", "groups", "log", "journal", "metrics", "firewall", "collect"):
    if not keys.get(section):
        problems.append(f"found no keys for {section} in the parsers' sources (did the source change shape?)")
man = man_sections(os.path.join(src, "packaging", "man", "sink.yaml.5"))
for section, names in sorted(keys.items()):
    for k in sorted(names):
        if k not in man.get(section, set()):
            problems.append(f"sink.yaml(5) does not document {section if section != 'top' else 'top-level'} "
                            f"key \"{k}\" (a bold .B {k} in its .SS {section} section)")

sink = os.path.join(build, "sink")
helptext = subprocess.run([sink, "-h"], capture_output=True, text=True, check=True).stdout
for section, names in sorted(keys.items()):
    if section == "collect":
        continue  # the stream options: sink.yaml(5) and `sink collect -h`
    for k in sorted(names | ({section} if section != "top" else set())):
        if not re.search(r"\b" + re.escape(k) + r"\b", helptext):
            problems.append(f"sink -h does not mention the config key \"{k}\"")

subcommands = re.findall(r'std::string\(argv\[1\]\)\s*==\s*"(\w+)"', read("core", "main.cpp"))
if not subcommands:
    problems.append("found no subcommands in core/main.cpp")
sink1 = read("packaging", "man", "sink.1")
usage = helptext[:helptext.index("\n\n")]
for sub in subcommands:
    if not re.search(r"^\s+\S*sink " + sub + r"\b", usage, re.M):
        problems.append(f"the Usage: lines of sink -h do not show \"sink {sub}\"")
    if not re.search(r"^\.B sink " + sub + r"\b", sink1, re.M):
        problems.append(f"the SYNOPSIS of sink(1) does not show \"sink {sub}\"")
    r = subprocess.run([sink, sub, "-h"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        problems.append(f"sink {sub} -h exits {r.returncode} with no help on stdout")

if problems:
    print("\n".join(problems))
    sys.exit(1)
count = sum(len(v) for v in keys.values())
print(f"{count} config keys and {len(subcommands)} subcommands are documented")
