from pathlib import Path

from setuptools import setup

setup(
    name="tcpmsg",
    version="0.1.0",
    description="A self-hosted TCP message server and console client built on Twisted",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    # twisted.plugins is a namespace shared with Twisted: ship only our drop-in file.
    packages=["tcpmsg", "tcpmsg.client", "tcpmsg.protocols", "twisted.plugins"],
    package_data={"twisted.plugins": ["tcpmsg_plugin.py"]},
    # [tls]: pyOpenSSL and service_identity, for ssl: ports and the client's --tls.
    install_requires=["Twisted[tls]>=24.7"],
    extras_require={
        "test": ["pytest>=8", "pytest-twisted>=1.14", "pexpect>=4.9", "hypothesis>=6.100"]
    },
    entry_points={"console_scripts": ["tcpmsg-client = tcpmsg.client.main:run"]},
)
