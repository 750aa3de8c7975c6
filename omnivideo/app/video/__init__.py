"""Video ingestion: probe, plan (qwen-vl-utils rules), sample by presentation time, model inputs.

    from omnivideo.app.video import SamplingConfig, probe_video, sample_video, to_model_inputs
    sampled = sample_video("clip.mp4", SamplingConfig(fps=2.0), progress=cb, cancel=token)
    inputs = to_model_inputs(sampled)      # pixel_values_videos, video_grid_thw, second_per_grid_ts
"""
from omnivideo.app.video.frames import SampledVideo, resize_frame, sample_video
from omnivideo.app.video.info import VideoInfo, probe_video
from omnivideo.app.video.processor import VideoInputs, frames_to_inputs, mm_token_type_ids, to_model_inputs
from omnivideo.app.video.planner import MemoryPlan, detect_gpu_memory, plan_memory, probe_report
from omnivideo.progress import CancelToken, ProgressCallback
from omnivideo.app.video.sampling import SamplingConfig, SamplingPlan, plan_sampling, smart_nframes, smart_resize

__all__ = [
    "CancelToken", "MemoryPlan", "ProgressCallback", "SampledVideo", "SamplingConfig", "SamplingPlan",
    "VideoInfo", "VideoInputs", "detect_gpu_memory", "frames_to_inputs", "mm_token_type_ids", "plan_memory",
    "plan_sampling", "probe_report", "probe_video", "resize_frame", "sample_video", "smart_nframes",
    "smart_resize", "to_model_inputs",
]
