"""Config: pydantic models of the YAML file, env-var secrets, platformdirs paths, clear errors."""

from cryptomon_tui.config.errors import ConfigError, ConfigProblem
from cryptomon_tui.config.exchanges import ExchangeConfig, ProbingConfig
from cryptomon_tui.config.loader import config_from_data, load_config
from cryptomon_tui.config.root import Config

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "ExchangeConfig",
    "ProbingConfig",
    "config_from_data",
    "load_config",
]
