"""Finding the programs local services need, with an exact install hint when one is missing."""

from __future__ import annotations

import re
import shutil
import subprocess

from connector.exceptions import MissingToolError

MIN_JAVA = 17
_HINTS = {
    "java": "install a JDK 17 or newer (Debian/Ubuntu: apt-get install -y openjdk-17-jdk-headless;"
    " macOS: brew install openjdk@17)",
    "mvn": "install Apache Maven (Debian/Ubuntu: apt-get install -y maven; macOS: brew install"
    " maven)",
    "redis-server": "install Redis (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew"
    " install redis)",
    "redis-cli": "install Redis (Debian/Ubuntu: apt-get install -y redis-server, which brings"
    " redis-cli; macOS: brew install redis)",
}


def require(program: str) -> str:
    """The full path of `program`, or MissingToolError saying what to install."""
    path = shutil.which(program)
    if path is None:
        raise MissingToolError(f"{program} not found on PATH: {_HINTS[program]}")
    return path


def require_java() -> str:
    """The path of a `java` new enough for Kafka 4 (Java 17+)."""
    java = require("java")
    probe = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', probe.stderr + probe.stdout)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        raise MissingToolError(
            f"Kafka 4 needs Java {MIN_JAVA}+, but {java} is Java {major or 'unknown'}: "
            f"{_HINTS['java']}"
        )
    return java
