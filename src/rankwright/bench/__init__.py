"""The head-to-head benchmark behind `rankwright bench`: Rankwright against Optuna's
samplers at equal measured compute (`headtohead`), on tasks fixed in `tasks`."""
