"""mf: dense metric depth from a camera and a sparse LiDAR (Modality Forcing), for ROS 2.

One setup.py serves both ways of installing:
- colcon on a robot (ament_python package ``mf_ros``; dependencies come from package.xml),
- pip in a plain virtual environment (``make demo`` / ``make test``; dependencies below).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mf_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Dense metric depth from camera + sparse LiDAR with a Modality Forcing diffusion transformer",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["mf_core", "mf_core.*", "mf_ros", "mf_ros.*", "mf_training", "mf_training.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models/mf-default", glob("models/mf-default/*")),
    ],
    install_requires=[
        # torch is not pinned here: GPU users bring their own build (the Makefile pins the CPU wheel).
        "torch>=2.4",
        "numpy>=1.24",
        "numba>=0.59",  # compiled per-point / per-ray loops: LiDAR projection, sim shading
        "scipy>=1.10",
        "opencv-python-headless>=4.8",
        "pillow>=9",  # reads a compressed image's size from its header before decoding
        "rosbags>=0.10",
        "mcap>=1.1",  # reads cut-off MCAP files record by record (mf bag recover)
        "transforms3d>=0.4",
        "safetensors>=0.4",
        "pyyaml>=6",
        "tqdm>=4.60",
        "tensorboard>=2.14",
    ],
    extras_require={
        # Real ROS 2 Jazzy Python wheels for machines without a ROS install (a robot uses its system rclpy).
        "ros": ["ros-jazzy-rclpy[fastrtps]", "ros-sensor-msgs==5.3.6"],
        # Ray casting for the synthetic camera + LiDAR scene generator.
        "sim": ["open3d-cpu>=0.18"],
        # Independent decoders and tools used by the test suite.
        "dev": ["pytest>=7", "mcap-ros2-support>=0.5", "ruff>=0.5", "psutil>=5"],
        # mf export-onnx and the onnxruntime backend (onnxruntime-gpu on CUDA / Jetson machines).
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        # Reference implementations compared against in `mf bench model`.
        "bench": ["diffusers>=0.30"],
        # Low-rank adapters for post-training a lifted model (train config lora.rank > 0).
        "lora": ["peft>=0.13"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "mf = mf_training.cli:main",
            "depth_node = mf_ros.nodes.depth_node:main",
            "recorder_node = mf_ros.nodes.recorder_node:main",
        ],
    },
)
