"""Cloud objects as SkyPilot's SDK has them (``sky.AWS()``, ``sky.Kubernetes()``, ...).

They are names, usable wherever a cloud is: ``Resources(cloud=sky.AWS())`` is
``Resources(infra='aws')``. Clouds skyhop has a backend for are ``available``; the others
(SkyPilot's other clouds) are placeholders: a task naming one parses, and launching it
says no backend of that name is installed.
"""

from __future__ import annotations

from typing import ClassVar


class Cloud:
    """A cloud by name; equal to another object of the same class, and to its name."""

    #: The backend name (the first part of ``infra``).
    NAME: ClassVar[str] = ""
    #: Whether skyhop ships a backend for it.
    available: ClassVar[bool] = False

    @property
    def canonical_name(self) -> str:
        return self.NAME

    def __str__(self) -> str:
        return self.NAME

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Cloud):
            return self.NAME == other.NAME
        return isinstance(other, str) and other.lower() == self.NAME

    def __hash__(self) -> int:
        return hash(self.NAME)


def _cloud(class_name: str, name: str, available: bool) -> type[Cloud]:
    doc = f"The {class_name} cloud" + ("." if available else " (not available in skyhop: a placeholder).")
    return type(class_name, (Cloud,), {"NAME": name, "available": available, "__doc__": doc})


AWS = _cloud("AWS", "aws", True)
GCP = _cloud("GCP", "gcp", True)
Kubernetes = _cloud("Kubernetes", "kubernetes", True)
SSH = _cloud("SSH", "ssh", True)
Local = _cloud("Local", "local", True)
Azure = _cloud("Azure", "azure", False)
Lambda = _cloud("Lambda", "lambda", False)
OCI = _cloud("OCI", "oci", False)
IBM = _cloud("IBM", "ibm", False)
RunPod = _cloud("RunPod", "runpod", False)
Nebius = _cloud("Nebius", "nebius", False)
Fluidstack = _cloud("Fluidstack", "fluidstack", False)
Paperspace = _cloud("Paperspace", "paperspace", False)
Cudo = _cloud("Cudo", "cudo", False)
Vast = _cloud("Vast", "vast", False)
SCP = _cloud("SCP", "scp", False)
DO = _cloud("DO", "do", False)

#: Every cloud class, by the name the SDK exports.
CLOUDS: dict[str, type[Cloud]] = {
    c.__name__: c for c in (AWS, GCP, Kubernetes, SSH, Local, Azure, Lambda, OCI, IBM, RunPod,
                            Nebius, Fluidstack, Paperspace, Cudo, Vast, SCP, DO)
}
