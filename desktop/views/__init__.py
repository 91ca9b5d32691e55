"""The window's panels: widgets that show models and emit what the user asked for."""
