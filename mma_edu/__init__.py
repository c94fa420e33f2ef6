"""mma-edu."""
