"""Write the JSON Schema of live events to schemas/events.schema.json.

Run after changing stream/events.py; a test fails while the committed file is stale.
"""

import json
from pathlib import Path

from stream.events import json_schema

OUT = Path(__file__).resolve().parent.parent / "schemas" / "events.schema.json"

if __name__ == "__main__":
    OUT.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
