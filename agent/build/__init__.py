"""The image builder: Dockerfile or buildpack detection, build contexts, docker builds."""
