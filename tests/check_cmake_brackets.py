"""Every bracket argument ([=[ ... ]=]) in the project's CMakeLists.txt files closes before the
next test is registered: an unclosed one swallows the tests after it as shell text, and they
silently never run (cli_replay_hand_computed did not, for a while). Exit 1 naming the line."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
bad = []
for path in root.rglob("CMakeLists.txt"):
    if "build" in path.relative_to(root).parts[:1]:
        continue
    text = path.read_text()
    for m in re.finditer(r"\[(=*)\[", text):
        close = text.find("]" + m.group(1) + "]", m.end())
        body = text[m.end():close if close >= 0 else len(text)]
        if close < 0 or re.search(r"^\s*(cxlkv_add_cli_test|add_test|cxlkv_add_test)\(", body, re.M):
            bad.append(f"{path.relative_to(root)}:{text[:m.start()].count(chr(10)) + 1}")
if bad:
    print("bracket arguments that do not close before the next test:", ", ".join(bad))
    sys.exit(1)
print("bracket arguments: all closed")
