"""Rule sets published through Redis: current version, history for rollback, the files of each."""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from nba.store import keys, scripts
from nba.store.contract import RulesChange
from nba.store.redis.base import RedisBase, Script

_PUBLISH_RULES = Script(scripts.PUBLISH_RULES)
_ROLLBACK_RULES = Script(scripts.ROLLBACK_RULES)


class Rules(RedisBase):
    async def publish_rules(self, version: str, files: Mapping[str, str], *, force: bool = True) -> bool:
        """Make a validated rule set read from a rules directory the current one for every process; True
        when the current version changed. Without `force`, only when the directory's content differs
        from the last one published (see PUBLISH_RULES)."""
        return bool(
            await self._eval(
                "publish_rules",
                _PUBLISH_RULES,
                [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY, keys.RULES_SOURCE, keys.RULES_CHANGES],
                [
                    version,
                    keys.rules_set(""),
                    keys.RULES_HISTORY,
                    orjson.dumps(dict(files)),
                    "force" if force else "changed",
                    keys.RULES_CHANGES_MAX,
                ],
            )
        )

    async def rules_source_version(self) -> str | None:
        """The version last published from a rules directory."""
        v = await self.client.get(keys.RULES_SOURCE)
        return v.decode() if isinstance(v, bytes) else None

    async def current_rules_version(self) -> str | None:
        # polled by every process twice a second: the shared connection, not a pool checkout
        v: bytes | None = await self._timed("rules_version", lambda: self._route.execute("GET", keys.RULES_CURRENT))
        return v.decode() if v else None

    async def rules_files(self, version: str) -> dict[str, str] | None:
        """The files of a published set; None when it is gone or is not a {name: text} object."""
        raw: bytes | None = await self._timed("rules_files", lambda: self.client.get(keys.rules_set(version)))
        try:
            files = orjson.loads(raw) if raw else None
        except ValueError:
            files = None
        if files is not None and not (isinstance(files, dict) and all(isinstance(t, str) for t in files.values())):
            files = None
        if raw and files is None:
            self.unreadable("rules_set", version, raw)
        return files

    async def rollback_rules(self) -> str | None:
        v = await self._eval(
            "rollback_rules",
            _ROLLBACK_RULES,
            [keys.RULES_CURRENT, keys.RULES_HISTORY_KEY, keys.RULES_CHANGES],
            [keys.rules_set(""), keys.RULES_CHANGES_MAX],
        )
        return v.decode() if v else None

    async def rules_history(self) -> list[str]:
        return [v.decode() for v in await self.client.lrange(keys.RULES_HISTORY_KEY, 0, -1) if isinstance(v, bytes)]

    async def rules_changes(self) -> list[RulesChange]:
        out: list[RulesChange] = []
        for raw in await self.client.lrange(keys.RULES_CHANGES, 0, -1):
            try:
                c = orjson.loads(raw)
                previous = c.get("previous")
                out.append(RulesChange(int(c["at"]), str(c["version"]), str(c["kind"]), previous if previous else None))
            except (ValueError, TypeError, KeyError, AttributeError):
                self.unreadable("rules_change", keys.RULES_CHANGES, raw)
        return out
