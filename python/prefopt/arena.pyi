"""Type stubs of prefopt.arena: the experiment runner of prefopt-arena on a config dict."""

from typing import Any, Dict, Union

def run(
    config: Union[Dict[str, Any], str], *, base: str = "", threads: int = 1,
    memory_limit_gib: float = 4.0,
) -> Dict[str, Any]: ...
