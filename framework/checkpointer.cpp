#include "framework/checkpointer.h"

#include <cstdlib>
#include <filesystem>

#include "framework/log.h"
#include "framework/train_loop.h"

namespace fs = std::filesystem;

namespace pgolf {

namespace {
double json_number(const Json& j) { return j.is_number() ? j.get<double>() : NAN; }  // NaN is written as null
}  // namespace

Checkpointer::Checkpointer(const Run& run, RunDir& dir)
    : run_(run), dir_(dir), every_(run.recipe.section("train").i("checkpoint_every")), file_(dir.file("checkpoint.bin")) {}

// Every rank's loader position goes in (rank 0 writes the file), so each resumes its own shard of the data.
void Checkpointer::write(const TrainingParts& parts, LoopState& st) {
  Json loaders = Json::array();
  for (const auto& s : all_gather_strings(*run_.comm, parts.loader.state().dump(), run_.device))
    loaders.push_back(Json::parse(s));
  const Json meta = {{"loaders", loaders},
                     {"step", st.step},
                     {"train_ms", st.train_ms},
                     {"stop_after", st.stop_after},
                     {"first_loss", st.first_loss},
                     {"last_loss", st.last_loss},
                     {"world", run_.comm->world()},
                     {"recipe_file", run_.recipe.file},
                     {"metrics_bytes", dir_.metrics_bytes()},
                     {"recipe", run_.recipe.resolved}};
  if (run_.comm->rank() == 0) write_checkpoint(file_, capture_state(parts), meta);
  run_.comm->barrier();
  st.last_checkpoint = st.step;
}

LoopState Checkpointer::restore(const TrainingParts& parts, Resume& resume) {
  restore_state(parts, resume.state, resume.checkpoint);
  const int rank = run_.comm->rank();
  if (resume.meta.contains("loaders")) parts.loader.restore(resume.meta.at("loaders").at(rank));
  resume.state = TrainingState();  // the host copy is no longer needed
  LoopState st;
  st.step = resume.meta.at("step").get<int64_t>();
  st.train_ms = resume.meta.at("train_ms").get<double>();
  st.stop_after = resume.meta.at("stop_after").get<int64_t>();
  st.first_loss = json_number(resume.meta.at("first_loss"));
  st.last_loss = json_number(resume.meta.at("last_loss"));
  st.last_checkpoint = st.step;
  // What the step before the checkpoint switched on (the loop), for an evaluation before the next step.
  const Config train = run_.recipe.section("train");
  run_.model->on_train_progress(
      Progress{std::max<int64_t>(st.step - 1, 0), train.i("iterations"), st.train_ms, training_budget_ms(train)}.fraction());
  if (run_.comm->rank() == 0)
    for (const auto& entry : fs::directory_iterator(dir_.path()))  // temp files of a checkpoint write that was killed
      if (entry.path().filename().string().rfind("checkpoint.bin.tmp.", 0) == 0) fs::remove(entry.path());
  log::info(strf("resumed from %s at step %lld/%lld (train_time %.0fms)", resume.checkpoint.c_str(), (long long)st.step,
                 (long long)run_.recipe.section("train").i("iterations"), st.train_ms));
  return st;
}

std::string Checkpointer::last_good(const LoopState& st) const {
  if (st.last_checkpoint < 0)
    return "there is no checkpoint of this run (train.checkpoint_every is 0 or none was due yet)";
  return strf("the last good checkpoint is %s (step %lld; resume with `%s`)", file_.c_str(), (long long)st.last_checkpoint,
              resume_command().c_str());
}

std::string Checkpointer::resume_command() const {
  const int world = run_.comm->world();
  if (std::getenv("PGOLF_LAUNCH_NPROC")) return strf("trainer --nproc %d --resume %s", world, dir_.path().c_str());
  if (run_.comm->collective())
    return strf("torchrun --nproc-per-node %d --no-python trainer --resume %s", run_.comm->local_world(), dir_.path().c_str());
  return "trainer --resume " + dir_.path();
}

}  // namespace pgolf
