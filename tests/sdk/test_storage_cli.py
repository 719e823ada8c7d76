"""`skyhop storage` and `skyhop volumes` through click's CliRunner against the fake server."""

from __future__ import annotations

from click.testing import CliRunner

from skyhop.cli import cli


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


ROW = {"name": "my-data", "store": "s3", "persistent": False, "cluster_name": "dev",
       "source": "skyhop-upload://" + "0" * 32, "created_at": 1.0, "last_use": "launch dev",
       "user_name": "alice"}  # fmt: skip


def test_storage_ls_lists_buckets_or_says_there_are_none(fake, client) -> None:
    fake.on("storage_ls", [ROW])
    out = run("storage", "ls").output
    assert out.splitlines()[0].split() == ["NAME", "STORE", "PERSISTENT", "CLUSTER", "SOURCE",
                                           "LAST_USE"]  # fmt: skip
    assert "my-data" in out and " no " in out and "dev" in out
    fake.on("storage_ls", [])
    assert run("storage", "ls").output == "No existing storage.\n"
    assert fake.bodies("storage_ls")[-1] == {"all_users": False}


def test_storage_delete_asks_then_deletes(fake, client) -> None:
    fake.on("storage_delete", ["my-data"])
    declined = run("storage", "delete", "my-data", input="n\n")
    assert declined.exit_code == 1 and fake.bodies("storage_delete") == []
    done = run("storage", "delete", "-y", "my-data", "b2")
    assert done.output == "Deleted storage my-data.\n"
    assert fake.bodies("storage_delete") == [{"names": ["my-data", "b2"], "all": False}]
    run("storage", "delete", "-a", "-y")
    assert fake.bodies("storage_delete")[-1] == {"names": None, "all": True}
    assert run("storage", "delete").exit_code == 2  # names or --all


def test_volumes_apply_ls_delete(fake, client) -> None:
    record = {"name": "v1", "type": "local", "user_name": "a", "created_at": 1.0, "last_use": ""}
    fake.on("volumes_apply", record)
    assert run("volumes", "apply", "v1").output == "Volume v1 (local) is ready.\n"
    assert fake.bodies("volumes_apply") == [{"name": "v1", "type": "local", "size": None}]
    fake.on("volumes_ls", [record])
    assert "v1" in run("volumes", "ls").output
    fake.on("volumes_delete", ["v1"])
    assert run("volumes", "delete", "-y", "v1").output == "Deleted volume v1.\n"
